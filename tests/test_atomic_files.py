"""A file written through `replacing` is complete under its name, or absent with nothing left over."""

import pytest

from bridge.atomic_files import replacing


def test_success_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "clips" / "take.wav"
    target.parent.mkdir()
    target.write_text("old")
    with replacing(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".take.")
        assert temporary.suffix == ".wav"
        temporary.write_text("new")
        assert target.read_text() == "old", "the old file stays until the new one is complete"
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["take.wav"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "take.wav"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target, suffix=".part") as temporary:
        temporary.write_text("half a clip")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]
