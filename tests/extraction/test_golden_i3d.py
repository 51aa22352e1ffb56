"""The I3D network against the port it mirrors (golden `i3d/`): the state-dict layout of the
published checkpoints, and `Mixed_5c` features of seeded clips from recipe weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from golden import golden_cases

from co2net_pipeline.extraction.i3d import InceptionI3d, load_i3d, recipe_state_dict

CASES = golden_cases("i3d")


def _network(meta: dict) -> InceptionI3d:
    network = InceptionI3d(meta["in_channels"])
    network.load_state_dict(recipe_state_dict(network, meta["weight_seed"]))
    return network.eval()


@pytest.mark.parametrize("case", CASES)
def test_state_dict_names_and_shapes_are_the_checkpoints(case) -> None:
    meta = json.loads((case / "meta.json").read_text())
    network = InceptionI3d(meta["in_channels"])
    layout = [[name, list(t.shape)] for name, t in network.state_dict().items()]
    assert layout == meta["state_dict"]


@pytest.mark.parametrize("case", CASES)
def test_golden_i3d_features(case, one_torch_thread) -> None:
    meta = json.loads((case / "meta.json").read_text())
    expected = np.load(case / "expected.npz")["features"]
    clips = np.random.RandomState(meta["input_seed"]).uniform(
        -1, 1, (meta["n_clips"], *meta["clip_shape"])
    )
    with torch.inference_mode():
        got = _network(meta)(torch.from_numpy(clips.astype(np.float32))).numpy()
    assert got.shape == expected.shape == (meta["n_clips"], 1024)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_saved_recipe_weights_load_as_a_checkpoint(tmp_path, i3d_weights) -> None:
    """A `torch.save` of the state dict loads through `load_i3d` as the real files would, also
    when wrapped in {"state_dict": ...}; the stems' input channels are checked."""
    rgb, flow = i3d_weights
    network = load_i3d(rgb, "rgb")
    reference = InceptionI3d(3)
    reference.load_state_dict(recipe_state_dict(reference, 1))
    for name, tensor in reference.state_dict().items():
        assert torch.equal(network.state_dict()[name], tensor), name
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": torch.load(flow, weights_only=True)}, wrapped)
    assert load_i3d(wrapped, "flow").in_channels == 2
    with pytest.raises(ValueError, match=r"rgb.pt: not an I3D flow state dict \(.*size mismatch"):
        load_i3d(rgb, "flow")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage.pt: not a readable I3D rgb state dict"):
        load_i3d(garbage, "rgb")


def test_any_spatial_size_works_with_same_padding() -> None:
    """16 x 16 and 40 x 56 crops go through (the tests' tiny crops); one vector per clip."""
    network = InceptionI3d(2).eval()
    with torch.inference_mode():
        for shape in ((1, 2, 16, 16, 16), (3, 2, 16, 40, 56)):
            assert network(torch.zeros(shape)).shape == (shape[0], 1024)
        with pytest.raises(ValueError, match=r"expected \(N, 2, T, H, W\)"):
            network(torch.zeros(1, 3, 16, 16, 16))
