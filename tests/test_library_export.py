"""Exporting clips and chains for the DAW, and the `segue library` command."""

import json

import numpy as np
import pytest
import soundfile

from bridge.cli import main
from bridge.errors import LibraryError
from bridge.library import ClipInfo, ClipLibrary
from bridge.library.export import export_clip
from bridge.paths import output_dir

RATE = 32000


def ramp(seconds, channels=1, start=0.0):
    values = np.linspace(start, start + 0.5, round(seconds * RATE), dtype=np.float32)
    return np.repeat(values[:, None], channels, axis=1)


@pytest.fixture
def chain():
    """Three clips: a mono root, a stereo continuation, and one written with its prompt in front."""
    with ClipLibrary() as library:
        root = library.record(ramp(1.0), RATE, ClipInfo(prompt="root", bpm=120, created_at=1))
        middle = library.record(ramp(0.5, 2, 0.2), RATE, ClipInfo(prompt="middle", parent_id=root.id, created_at=2))
        with_prompt = np.concatenate([ramp(0.25, 2, 0.9), ramp(0.5, 2, -0.5)])
        last = library.record(with_prompt, RATE, ClipInfo(prompt="last", parent_id=middle.id, created_at=3,
                                                          params={"includes_prompt_seconds": 0.25}))
    return root, middle, last


def test_a_clip_is_exported_at_the_sessions_rate_and_bit_depth_with_a_sidecar(chain, tmp_path):
    root = chain[0]
    with ClipLibrary() as library:
        path = export_clip(library, root.id, sample_rate=48000, bit_depth=24, destination=tmp_path)
    info = soundfile.info(str(path))
    assert (info.samplerate, info.subtype, info.channels, info.frames) == (48000, "PCM_24", 1, 48000)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["format"] == "segue-export" and sidecar["bit_depth"] == 24
    assert sidecar["clips"][0]["uid"] == root.uid and sidecar["clips"][0]["bpm"] == 120


def test_a_chain_is_exported_in_order_without_repeating_a_written_prompt(chain, tmp_path):
    with ClipLibrary() as library:
        path = export_clip(library, chain[2].id, sample_rate=RATE, bit_depth=32, destination=tmp_path / "all.wav",
                           chain=True)
    audio, rate = soundfile.read(path, always_2d=True, dtype="float32")
    assert path == tmp_path / "all.wav" and rate == RATE and audio.shape == (round(2.0 * RATE), 2)
    assert np.allclose(audio[: RATE, 0], ramp(1.0)[:, 0]) and np.allclose(audio[: RATE, 1], audio[: RATE, 0])
    assert np.allclose(audio[RATE: RATE + RATE // 2], ramp(0.5, 2, 0.2))
    assert np.allclose(audio[RATE + RATE // 2:], ramp(0.5, 2, -0.5))
    segments = json.loads(path.with_suffix(".json").read_text())["segments"]
    assert [(s["uid"], s["start_seconds"], s["duration_seconds"]) for s in segments] == [
        (chain[0].uid, 0.0, 1.0), (chain[1].uid, 1.0, 0.5), (chain[2].uid, 1.5, 0.5)]


def test_integer_exports_clip_overshoots_instead_of_wrapping(tmp_path):
    with ClipLibrary() as library:
        clip = library.record(np.full((RATE, 1), 1.5, np.float32), RATE, ClipInfo(prompt="loud"))
        path = export_clip(library, clip.id, sample_rate=RATE, bit_depth=16, destination=tmp_path)
    audio, _ = soundfile.read(path)
    assert audio.min() > 0.99


def test_export_refuses_impossible_formats(chain):
    with ClipLibrary() as library, pytest.raises(LibraryError, match="bit depth"):
        export_clip(library, chain[0].id, sample_rate=48000, bit_depth=12)
    with ClipLibrary() as library, pytest.raises(LibraryError, match="sample rate"):
        export_clip(library, chain[0].id, sample_rate=100, bit_depth=16)


def test_cli_lists_searches_shows_and_exports(chain, capsys):
    assert main(["library", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["last", "middle", "root"]
    assert main(["library", "search", "mid"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "middle"
    assert main(["library", "search", "nothing-like-this"]) == 0
    assert capsys.readouterr().out.strip() == "no clips match"
    assert main(["library", "list", "--bpm-min", "100"]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]] == ["root"]
    assert main(["library", "show", str(chain[2].id)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["chain"] == [chain[0].id, chain[1].id, chain[2].id] and shown["parent_uid"] == chain[1].uid
    assert main(["library", "export", str(chain[2].id), "--chain", "--sample-rate", "44100", "--bit-depth", "16"]) == 0
    exported = capsys.readouterr().out.strip()
    assert exported.startswith(str(output_dir() / "exports")) and soundfile.info(exported).samplerate == 44100


def test_cli_delete_restore_and_check(chain, capsys):
    root = chain[0]
    assert main(["library", "delete", str(root.id)]) == 0
    assert "trash" in capsys.readouterr().out and not root.path.exists()
    assert main(["library", "list", "--trash"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "root"
    assert main(["library", "restore", str(root.id)]) == 0
    assert root.path.exists()
    capsys.readouterr()
    chain[1].path.unlink()
    assert main(["library", "check", "--dry-run"]) == 0
    assert "(not repaired)" in capsys.readouterr().out
    assert main(["library", "check"]) == 0
    assert "kept as 'missing'" in capsys.readouterr().out
    assert main(["library", "check"]) == 0
    assert "all consistent" in capsys.readouterr().out


def test_cli_unknown_clip_is_one_line_and_exit_2(capsys):
    assert main(["library", "export", "42"]) == 2
    error = capsys.readouterr().err
    assert error.strip() == "segue: error: no clip with id 42 in the library"
