"""Clip library: producers find, rate, chain, trash and restore clips; the library survives damage."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from bridge.engine.events import GenerationResult, Take
from bridge.engine.request import GenerationRequest
from bridge.errors import LibraryError
from bridge.library import ClipInfo, ClipLibrary, ClipQuery
from bridge.library.files import read_sidecar, sidecar_path, trash_dir
from bridge.library.integrity import check_library
from bridge.library.schema import SCHEMA_VERSION
from bridge.paths import data_dir, output_dir

RATE = 32000


def noise(seconds=0.1, channels=1, seed=0):
    return (np.random.default_rng(seed).standard_normal((round(seconds * RATE), channels)) * 0.1).astype(np.float32)


def result_for(request, *takes_audio, seed=100):
    takes = [Take(index=i, seed=seed + i, audio=audio) for i, audio in enumerate(takes_audio)]
    return GenerationResult(request=request, sample_rate=RATE, takes=takes, model_id=request.model, device="cpu")


@pytest.fixture
def library():
    with ClipLibrary() as opened:
        yield opened


def add(library, prompt="warm pads", created_at=None, **fields):
    return library.record(noise(), RATE, ClipInfo(prompt=prompt, model=fields.pop("model", "tiny"),
                                                  created_at=created_at, **fields))


def titles(clips):
    return [clip.title for clip in clips]


def dead_writer():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    import socket

    return f"{socket.gethostname()}:{process.pid}"


# Recording and finding


def test_a_take_is_recorded_with_every_parameter_and_a_sidecar(library):
    request = GenerationRequest(prompt="lo-fi drums", model="tiny", bars=2, bpm=90, seed=7, temperature=0.9)
    result = result_for(request, noise(0.5), noise(0.5, seed=1))
    clips = library.add_result(result, tags=["Lo Fi", "drums"])
    assert len(clips) == 2
    clip = clips[1]
    assert clip.status == "ready" and clip.path.parent == output_dir().resolve()
    assert (clip.prompt, clip.model, clip.seed, clip.bpm, clip.bars, clip.signature) == (
        "lo-fi drums", "tiny", 101, 90.0, 2.0, "4/4")
    assert clip.params["temperature"] == 0.9 and clip.params["take_index"] == 1
    assert clip.tags == ("lo-fi", "drums") and clip.duration_seconds == pytest.approx(0.5)
    audio, rate = soundfile.read(clip.path, always_2d=True)
    assert rate == RATE and np.allclose(audio, result.takes[1].audio, atol=1e-6)
    sidecar = read_sidecar(clip.path)
    assert sidecar["uid"] == clip.uid and sidecar["segue_version"]  # write_take's fields are kept
    assert sidecar["parameters"]["seed"] == 7 and sidecar["seed"] == 101


def test_a_tonal_clip_gets_a_key_and_noise_gets_none(library):
    t = np.arange(RATE) / RATE
    triad = lambda notes: sum(np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * h * t) / h  # noqa: E731
                              for n in notes for h in (1, 2, 3))
    progression = np.concatenate([triad(c) for c in ([57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64])])
    tonal = library.record(0.05 * progression, RATE, ClipInfo(prompt="a minor"))
    assert tonal.key == "A minor"
    assert library.record(noise(2.0), RATE, ClipInfo(prompt="noise")).key is None
    assert library.record(noise(), RATE, ClipInfo(prompt="told", key="D major")).key == "D major"


def test_search_filters_and_orders_newest_first(library):
    add(library, "dusty lo-fi hip hop drums", created_at=1000, bpm=85, tags=["drums"])
    add(library, "deep house groove with organ", created_at=2000, bpm=124, model="facebook/musicgen-small")
    kept = add(library, "ambient pad bed", created_at=3000, bpm=70, name="Night pad", kept=True)
    add(library, "jungle drums break", created_at=4000, bpm=170, tags=["dnb"])

    assert titles(library.search()) == ["jungle drums break", "Night pad", "deep house groove with organ",
                                        "dusty lo-fi hip hop drums"]
    assert titles(library.search(ClipQuery(text="drums"))) == ["jungle drums break", "dusty lo-fi hip hop drums"]
    assert titles(library.search(ClipQuery(text="dru hip"))) == ["dusty lo-fi hip hop drums"]  # prefixes, all words
    assert titles(library.search(ClipQuery(text="lo-fi"))) == ["dusty lo-fi hip hop drums"]
    assert titles(library.search(ClipQuery(text="night"))) == ["Night pad"]  # the name counts
    assert titles(library.search(ClipQuery(text="dnb"))) == ["jungle drums break"]  # tags count
    assert titles(library.search(ClipQuery(model="facebook/musicgen-small"))) == ["deep house groove with organ"]
    assert titles(library.search(ClipQuery(bpm_min=80, bpm_max=130))) == [
        "deep house groove with organ", "dusty lo-fi hip hop drums"]
    assert [c.id for c in library.search(ClipQuery(kept_only=True))] == [kept.id]
    assert titles(library.search(ClipQuery(tag="DNB"))) == ["jungle drums break"]
    assert titles(library.search(ClipQuery(limit=2, offset=1))) == ["Night pad", "deep house groove with organ"]
    assert library.count(ClipQuery(text="drums")) == 2
    assert library.models() == ["facebook/musicgen-small", "tiny"]
    assert library.search(ClipQuery(text='"unbalanced quote AND OR (')) == []


def test_search_without_full_text_index_gives_the_same_answers(library):
    add(library, "dusty lo-fi hip hop drums", created_at=1, tags=["drums"])
    add(library, "100% wet_reverb pad", created_at=2)
    queries = [ClipQuery(text=t) for t in ("drums", "dru hip", "lo-fi", "100%", "wet_", "pad")]
    with_fts = [titles(library.search(q)) for q in queries]
    library.full_text = False
    assert [titles(library.search(q)) for q in queries] == with_fts
    assert with_fts[3] == ["100% wet_reverb pad"]


def test_producer_edits_name_rating_keep_and_tags(library):
    clip = add(library)
    edited = library.update(clip.id, name="  Keeper ", rating=4, kept=True, tags="late night, Pads")
    assert (edited.name, edited.rating, edited.kept, edited.tags) == ("Keeper", 4, True, ("late-night", "pads"))
    assert titles(library.search(ClipQuery(text="keeper"))) == ["Keeper"]
    with pytest.raises(LibraryError, match="0-5"):
        library.update(clip.id, rating=6)
    with pytest.raises(LibraryError, match="no clip with id 999"):
        library.update(999, rating=1)


def test_a_continuation_of_a_library_clip_joins_its_chain(library):
    first = library.add_take(*_one_take(GenerationRequest(prompt="piano", model="tiny")))
    request = GenerationRequest(prompt="more piano", model="tiny", audio_path=str(first.path), prompt_seconds=0.1)
    second = library.add_take(*_one_take(request))
    third = library.add_take(*_one_take(GenerationRequest(prompt="even more", model="tiny")), parent_id=second.id)
    assert second.parent_id == first.id and third.parent_id == second.id
    assert [c.id for c in library.chain(third.id)] == [first.id, second.id, third.id]
    assert [c.id for c in library.children(first.id)] == [second.id]
    assert read_sidecar(third.path)["parent_uid"] == second.uid


def _one_take(request, seconds=0.2):
    result = result_for(request, noise(seconds))
    return result, result.takes[0]


def test_writing_over_a_library_clip_moves_the_old_one_to_the_trash(library, tmp_path):
    target = tmp_path / "mine.wav"
    old = library.add_take(*_one_take(GenerationRequest(prompt="old", model="tiny")), path=target)
    new = library.add_take(*_one_take(GenerationRequest(prompt="new", model="tiny")), path=target)
    assert new.path == target.resolve() and library.get(old.id).status == "trashed"
    assert library.get(old.id).file_path.is_file()


# Trash


def test_delete_moves_files_to_the_segue_trash_and_restore_brings_them_back(library):
    clip = add(library)
    trashed = library.trash(clip.id)
    assert not clip.path.exists() and not sidecar_path(clip.path).exists()
    assert trashed.file_path.is_file() and trashed.file_path.is_relative_to(data_dir() / "trash")
    assert sidecar_path(trashed.file_path).is_file()
    assert library.search() == [] and [c.id for c in library.search(ClipQuery(in_trash=True))] == [clip.id]
    restored = library.restore(clip.id)
    assert restored.status == "ready" and clip.path.is_file() and not trashed.file_path.exists()
    assert list(trash_dir().iterdir()) == []


def test_emptying_the_trash_deletes_for_good(library):
    keep, gone = add(library, "keep"), add(library, "gone")
    path = library.trash(gone.id).file_path
    assert library.empty_trash() == 1
    assert not path.exists() and titles(library.search()) == ["keep"] and keep.path.exists()
    with pytest.raises(LibraryError):
        library.get(gone.id)


# Crash recovery and the integrity check


def test_an_interrupted_write_with_its_file_complete_is_kept(library):
    clip = add(library)
    sidecar_path(clip.path).unlink()
    library._execute("UPDATE clips SET status = 'pending', writer = ? WHERE id = ?", (dead_writer(), clip.id))
    assert library.search() == []
    assert len(library.recover()) == 1
    assert library.get(clip.id).status == "ready" and read_sidecar(clip.path)["uid"] == clip.uid


def test_an_interrupted_write_without_its_file_is_removed_with_its_temporary_files(library):
    clip = add(library)
    temp = clip.path.with_name(f".{clip.path.stem}.x8k2.wav")
    clip.path.rename(temp)
    library._execute("UPDATE clips SET status = 'pending', writer = ? WHERE id = ?", (dead_writer(), clip.id))
    library.recover()
    assert not temp.exists() and not sidecar_path(clip.path).exists()
    with pytest.raises(LibraryError):
        library.get(clip.id)


def test_a_write_still_running_in_another_process_is_left_alone(library):
    clip = add(library)
    clip.path.unlink()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as writer:
        import socket

        library._execute("UPDATE clips SET status = 'pending', writer = ? WHERE id = ?",
                         (f"{socket.gethostname()}:{writer.pid}", clip.id))
        assert library.recover() == []
        assert check_library(library).actions == []
        writer.kill()
    assert library.get(clip.id).status == "pending"
    library.recover()
    with pytest.raises(LibraryError):
        library.get(clip.id)


def test_an_interrupted_move_to_the_trash_is_finished(library):
    clip = add(library)
    library._execute("UPDATE clips SET status = 'trashing', writer = ? WHERE id = ?", (dead_writer(), clip.id))
    library.recover()
    assert library.get(clip.id).status == "trashed" and library.get(clip.id).file_path.is_file()
    assert not clip.path.exists()


def test_check_keeps_a_clip_whose_file_vanished_and_finds_it_again(library):
    clip = add(library)
    moved_away = clip.path.with_name("elsewhere.bin")
    clip.path.rename(moved_away)
    report = check_library(library)
    assert library.get(clip.id).status == "missing" and "file missing" in report.actions[0]
    assert library.search() == []
    moved_away.rename(clip.path)
    check_library(library)
    assert library.get(clip.id).status == "ready"


def test_check_relinks_a_clip_moved_to_another_library_folder(library, tmp_path):
    clip = add(library, "moved")
    other = library.record(noise(), RATE, ClipInfo(prompt="other"), out_dir=tmp_path / "other")
    for path in (clip.path, sidecar_path(clip.path)):
        path.rename(other.path.parent / path.name)
    check_library(library)
    assert library.get(clip.id).status == "ready" and library.get(clip.id).path == other.path.parent / clip.path.name


def test_a_lost_database_is_rebuilt_from_the_sidecars(tmp_path):
    with ClipLibrary() as library:
        parent = add(library, "parent", created_at=1000, bpm=90, tags=["keys"])
        library.update(parent.id, rating=5, kept=True)
        child = library.record(noise(), RATE, ClipInfo(prompt="child", parent_id=parent.id, created_at=2000))
    for name in ("library.sqlite3", "library.sqlite3-wal", "library.sqlite3-shm"):
        (data_dir() / name).unlink(missing_ok=True)
    with ClipLibrary() as library:
        report = check_library(library)
        assert len(report.actions) == 2
        rebuilt = library.search()
        assert titles(rebuilt) == ["child", "parent"]
        assert rebuilt[0].uid == child.uid and rebuilt[0].parent_id == rebuilt[1].id
        assert (rebuilt[1].bpm, rebuilt[1].tags, rebuilt[1].created_at) == (90.0, ("keys",), 1000)
        assert (rebuilt[1].rating, rebuilt[1].kept) == (5, True)
        assert check_library(library).clean


def test_check_adopts_a_clip_written_by_write_take_outside_the_library(library):
    from bridge.clips import write_take

    result, take = _one_take(GenerationRequest(prompt="cli take", model="tiny", bpm=100, bars=1))
    path = write_take(result, take, out_dir=output_dir())
    assert check_library(library, repair=False).actions == [f"(not repaired) adopted {path.name} from its sidecar"]
    assert library.search() == []
    check_library(library)
    (clip,) = library.search()
    assert (clip.prompt, clip.bpm, clip.seed, clip.path) == ("cli take", 100.0, take.seed, path.resolve())
    assert read_sidecar(path)["uid"] == clip.uid


def test_check_reports_unreadable_files_and_stale_temporary_files(library):
    clip = add(library)
    clip.path.write_bytes(b"not audio")
    stale = clip.path.with_name(f".{clip.path.stem}.ab12.wav")
    stale.write_bytes(b"half")
    import os

    os.utime(stale, (0, 0))
    fresh = clip.path.with_name(f".{clip.path.stem}.cd34.wav")
    fresh.write_bytes(b"being written")
    report = check_library(library)
    assert report.unreadable == [clip.path] and clip.path.read_bytes() == b"not audio"
    assert not stale.exists() and fresh.exists()


def test_a_dry_run_changes_nothing(library):
    clip = add(library)
    clip.path.unlink()
    report = check_library(library, repair=False)
    assert report.actions and all(line.startswith("(not repaired)") for line in report.actions)
    assert library.get(clip.id).status == "ready"


# Schema


def test_a_library_from_a_newer_segue_is_refused_not_damaged():
    ClipLibrary().close()
    path = data_dir() / "library.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(LibraryError, match="newer Segue"):
        ClipLibrary()


def test_reopening_keeps_clips_and_a_damaged_database_is_reported():
    with ClipLibrary() as library:
        clip = add(library)
    with ClipLibrary() as library:
        assert library.get(clip.id).uid == clip.uid
    path = data_dir() / "other.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LibraryError, match="segue library check"):
        ClipLibrary(path)


# Killed writers


WRITER = """
import os
import sys
import numpy as np
from bridge.library import ClipInfo, ClipLibrary, ClipQuery


def write(round_number):
    library = ClipLibrary()
    audio = (np.random.default_rng(round_number).standard_normal((1600, 2)) * 0.1).astype(np.float32)
    print("ready", flush=True)
    for i in range(10**6):
        clip = library.record(audio, 32000, ClipInfo(prompt=f"take {i}", model="tiny", seed=i, key=""))
        if i % 3 == 1:
            library.trash(clip.id)
        if i % 5 == 2:
            for trashed in library.search(ClipQuery(in_trash=True, limit=1)):
                library.restore(trashed.id)


# A writer per line read (the round, then NAME=folder variables, tab-separated), forked from this
# process: Python and the library load once, not per kill.
for line in sys.stdin:
    round_number, *folders = line.rstrip("\\n").split("\\t")
    pid = os.fork()
    if pid == 0:
        try:
            os.environ.update(folder.split("=", 1) for folder in folders)
            write(int(round_number))
        finally:
            os._exit(1)  # never back into this loop (the writer ends only when killed)
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("gone", flush=True)
"""


def test_killing_the_writer_at_any_moment_never_leaves_rows_and_files_disagreeing(tmp_path, monkeypatch):
    _kill_writer_repeatedly(rounds=15, seed=1234, tmp_path=tmp_path, monkeypatch=monkeypatch)


@pytest.mark.slow
def test_killing_the_writer_sixty_times(tmp_path, monkeypatch):
    _kill_writer_repeatedly(rounds=60, seed=99, tmp_path=tmp_path, monkeypatch=monkeypatch)


# Every round checks the whole library, and a writer adds ~30 clips a round: a new library every so
# many rounds keeps the checks from growing with the square of the rounds.
ROUNDS_PER_LIBRARY = 20


def _kill_writer_repeatedly(rounds, seed, tmp_path, monkeypatch):
    rng = np.random.default_rng(seed)
    recovered = 0
    folders = ""
    forker = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for round_number in range(rounds):
            if round_number % ROUNDS_PER_LIBRARY == 0:  # this process and the writers move to a new library
                home = tmp_path / f"library-{round_number // ROUNDS_PER_LIBRARY}"
                library_dirs = {f"SEGUE_{name}_DIR": str(home / name.lower()) for name in ("DATA", "OUTPUT")}
                for variable, folder in library_dirs.items():
                    monkeypatch.setenv(variable, folder)
                folders = "".join(f"\t{variable}={folder}" for variable, folder in library_dirs.items())
            forker.stdin.write(f"{round_number}{folders}\n")
            forker.stdin.flush()
            writer_pid = int(forker.stdout.readline())
            assert forker.stdout.readline() == "ready\n"
            time.sleep(float(rng.uniform(0.0, 0.15)))
            os.kill(writer_pid, signal.SIGKILL)  # no cleanup, no atexit, no flush
            assert forker.stdout.readline() == "gone\n"
            with ClipLibrary(recover=False) as library:
                recovered += len(library.recover())
                check_library(library)
                _assert_consistent(library)
    finally:
        forker.kill()
        forker.wait(10)
    print(f"{recovered} interrupted writes or moves recovered in {rounds} kills")
    assert recovered > 0  # some kills did land between the steps of a write or a move


def _assert_consistent(library):
    rows = library._all_rows()
    assert {clip.status for clip in rows} <= {"ready", "trashed"}
    for clip in rows:
        assert soundfile.info(str(clip.file_path)).frames == 1600
        assert read_sidecar(clip.file_path)["uid"] == clip.uid
    ready_paths = {clip.path for clip in rows if clip.status == "ready"}
    assert set(output_dir().resolve().glob("*.wav")) == ready_paths
    assert list(output_dir().glob(".*")) == []
    trashed = {clip.uid for clip in rows if clip.status == "trashed"}
    assert {folder.name for folder in trash_dir().iterdir()} == trashed
    for folder in trash_dir().iterdir():
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert check_library(library, repair=False).clean


def test_sidecar_json_is_readable_by_other_tools(library):
    clip = add(library, "café – 100% \"wet\"")
    assert json.loads(sidecar_path(clip.path).read_text(encoding="utf-8"))["prompt"] == "café – 100% \"wet\""
