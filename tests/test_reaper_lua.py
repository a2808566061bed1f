"""The real Lua companions (bridge/daw/companions/reaper) run by lua5.4 on an emulated REAPER project.

Segue's own job writer and result reader (bridge/daw/reaper_jobs.py) are on the other side, so
these tests check the contract from both ends with the code that ships.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge import paths
from bridge.daw.reaper_jobs import (
    JOB_FILE,
    ReaperJob,
    default_exchange_dir,
    read_result,
    write_job,
)

ROOT = Path(__file__).resolve().parent.parent
COMPANIONS = ROOT / "bridge" / "daw" / "companions" / "reaper"
EMULATION = ROOT / "tests" / "reaper_emulation.lua"
LUA = shutil.which("lua5.4")

pytestmark = pytest.mark.skipif(
    LUA is None, reason="needs lua5.4 (Debian package lua5.4, installed by .ci/run)"
)

# The producer's own last render: none of it may leak into Segue's render, all of it must come back.
PRODUCER_RENDER_SETTINGS = {
    "RENDER_SETTINGS": 32,
    "RENDER_BOUNDSFLAG": 1,
    "RENDER_STARTPOS": 0,
    "RENDER_ENDPOS": 0,
    "RENDER_TAILFLAG": 1,
    "RENDER_ADDTOPROJ": 1,
    "RENDER_SRATE": 22050,
    "RENDER_CHANNELS": 1,
    "RENDER_DITHER": 3,
    "RENDER_NORMALIZE": 1,
    "RENDER_FILE": "/home/producer/renders",
    "RENDER_PATTERN": "$project",
    "RENDER_FORMAT": "l3pm",
    "RENDER_FORMAT2": "l3pm",
}


def lua_value(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def lua_track(track) -> str:
    """A track: its name, or (name, [(file, position_seconds, length_seconds), ...])."""
    name, items = (track, []) if isinstance(track, str) else track
    item_list = ", ".join(
        f"{{ position = {position}, length = {length}, take = {{ source = {{ file = {lua_value(str(file))} }} }} }}"
        for file, position, length in items
    )
    return f"{{ name = {lua_value(name)}, items = {{ {item_list} }} }}"


def project_source(
    tempo=96.0, signature=(6, 8), cursor=2.0, time_selection=(0.0, 0.0), tracks=("Drums", "Bass"),
    tempo_changes=(), trim_behind=False, refuse_insert=False, copy_media_to=None,
):
    render = ", ".join(f"{key} = {lua_value(value)}" for key, value in PRODUCER_RENDER_SETTINGS.items())
    track_list = ", ".join(lua_track(track) for track in tracks)
    changes = ", ".join(f"{{ qn = {qn}, tempo = {bpm} }}" for qn, bpm in tempo_changes)
    return (
        f"return {{ tempo = {tempo}, signature = {{ {signature[0]}, {signature[1]} }}, cursor = {cursor}, "
        f"time_selection = {{ {time_selection[0]}, {time_selection[1]} }}, tracks = {{ {track_list} }}, "
        f"tempo_changes = {{ {changes} }}, trim_behind = {lua_value(trim_behind)}, "
        f"refuse_insert = {lua_value(refuse_insert)}, copy_media_to = {lua_value(copy_media_to) if copy_media_to else 'nil'}, "
        f"render = {{ {render} }} }}"
    )


def run_companion(script: str, job: ReaperJob, tmp_path: Path, **project) -> tuple[dict | None, dict]:
    """Write `job` as Segue does, run `script`, return (Segue's reading of the result, the project after)."""
    exchange = default_exchange_dir()
    write_job(exchange, job)
    source = tmp_path / "project.lua"
    source.write_text(project_source(**project))
    after = tmp_path / "project-after.txt"
    completed = subprocess.run(
        [LUA, str(EMULATION), str(source), str(COMPANIONS / script), str(after)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    project_after = dict(line.split("=", 1) for line in after.read_text().splitlines())
    return read_result(exchange, job.id), project_after


@pytest.fixture
def clip():
    path = paths.output_dir() / "take 1.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros((44100, 2), dtype=np.float32), 44100, subtype="PCM_16")
    return path


def insert_job(clip: Path, **fields) -> ReaperJob:
    return ReaperJob("insert", {"file": str(clip), "track_index": "1", "track_name": "Segue", **fields})


def test_insert_places_the_clip_at_the_beat_in_one_undo_step_and_restores_the_cursor(clip, tmp_path):
    result, after = run_companion("Segue_insert_clip.lua", insert_job(clip, position_beats="8"), tmp_path)

    assert result["status"] == "ok", result
    # 8 quarter notes at 96 BPM start at 5 s; the clip lasts 1 s.
    assert (result["track_index"], result["position_seconds"], result["length_seconds"]) == ("1", "5", "1")
    assert after["track2_item1"] == f"5|1|{clip}"
    assert (result["tempo_bpm"], result["signature_numerator"], result["signature_denominator"]) == (
        "96",
        "6",
        "8",
    )
    assert after["cursor"] == "2"
    assert (after["undo"], after["undo_open"], after["ui_refresh_depth"]) == ("Segue: insert clip", "0", "0")
    assert not (default_exchange_dir() / JOB_FILE).exists(), "the script takes the job"


def test_insert_on_a_new_named_track_at_the_edit_cursor(clip, tmp_path):
    result, after = run_companion(
        "Segue_insert_clip.lua", insert_job(clip, track_index="-1", track_name="Ideas"), tmp_path
    )

    assert (result["status"], result["track_index"], result["position_seconds"]) == ("ok", "2", "2")
    assert (after["tracks"], after["track3_name"], after["track3_item1"]) == ("3", "Ideas", f"2|1|{clip}")


def test_insert_of_a_file_reaper_cannot_read_fails_cleanly(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")

    result, after = run_companion("Segue_insert_clip.lua", insert_job(text), tmp_path)

    assert result["status"] == "error"
    assert "REAPER could not insert" in result["message"]
    assert (after["undo_open"], after["ui_refresh_depth"], after["cursor"]) == ("0", "0", "2")
    assert "track2_item1" not in after


def test_a_job_for_another_script_is_refused(clip, tmp_path):
    job = ReaperJob("render", {"output_file": str(tmp_path / "r.wav"), "bounds": "time_selection"})
    result, after = run_companion("Segue_insert_clip.lua", job, tmp_path)

    assert result["status"] == "error"
    assert "this job is for the Segue render script, not the insert script" in result["message"]


def test_an_expired_job_is_refused(clip, tmp_path):
    result, after = run_companion(
        "Segue_insert_clip.lua", ReaperJob("insert", {"file": str(clip)}, lifetime_seconds=-10), tmp_path
    )
    assert (result["status"], result["message"]) == ("error", "the job expired before REAPER ran it")
    assert "track1_item1" not in after


def test_render_of_the_time_selection_restores_the_producers_settings(tmp_path):
    target = tmp_path / "renders" / "for continuation.wav"
    target.parent.mkdir()
    job = ReaperJob("render", {"output_file": str(target), "bounds": "time_selection"})

    result, after = run_companion("Segue_render_selection.lua", job, tmp_path, time_selection=(4.0, 6.5))

    assert result["status"] == "ok", result
    assert (result["start_seconds"], result["end_seconds"], result["output_file"]) == (
        "4",
        "6.5",
        str(target),
    )
    assert soundfile.info(target).duration == pytest.approx(2.5)
    assert (after["RENDER_FORMAT"], after["RENDER_PATTERN"], after["RENDER_BOUNDSFLAG"]) == (
        "l3pm",
        "$project",
        "1",
    )


def test_render_without_a_time_selection_says_what_to_do(tmp_path):
    job = ReaperJob("render", {"output_file": str(tmp_path / "r.wav"), "bounds": "time_selection"})
    result, _ = run_companion("Segue_render_selection.lua", job, tmp_path)
    assert result["message"] == "nothing to render: select a time range in REAPER first"


def test_project_info_reports_tempo_and_signature(tmp_path):
    result, _ = run_companion(
        "Segue_project_info.lua", ReaperJob("info"), tmp_path, tempo=174.0, signature=(7, 8)
    )
    assert (result["status"], result["tempo_bpm"], result["signature_numerator"]) == ("ok", "174", "7")


# -- what REAPER's API documentation says that a first try did not expect (issue 11) ---------------


def test_a_clip_dropped_inside_an_item_with_trim_behind_on_is_a_success(clip, tmp_path):
    bed = tmp_path / "bed.wav"
    bed.write_bytes(b"")
    tracks = ("Drums", ("Bass", [(bed, 0.0, 10.0)]))

    result, after = run_companion(
        "Segue_insert_clip.lua", insert_job(clip, position_beats="8"), tmp_path, tracks=tracks, trim_behind=True
    )

    assert result["status"] == "ok", result
    # REAPER split the bed around the clip: the head, the clip, and the bed's tail as a new item.
    assert [after[f"track2_item{n}"] for n in (1, 2, 3)] == [f"0|5|{bed}", f"5|1|{clip}", f"6|4|{bed}"]
    assert after["undo"] == "Segue: insert clip"


def test_a_refused_insert_on_a_new_track_takes_the_track_away_again(clip, tmp_path):
    result, after = run_companion(
        "Segue_insert_clip.lua", insert_job(clip, track_index="-1"), tmp_path, refuse_insert=True
    )

    assert (result["status"], result["message"]) == ("error", f"REAPER could not insert {clip}")
    assert after["tracks"] == "2"
    assert (after["undo"], after["undo_open"], after["ui_refresh_depth"]) == (
        "Segue: insert clip failed (nothing changed)", "0", "0"
    )


@pytest.mark.parametrize("track_index", ["1", "-1"])
def test_an_unreadable_file_changes_nothing_and_leaves_no_undo_point(track_index, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")

    result, after = run_companion("Segue_insert_clip.lua", insert_job(text, track_index=track_index), tmp_path)

    assert result["status"] == "error"
    assert (after["undo"], after["tracks"]) == ("", "2")


def test_project_info_and_render_leave_no_undo_point(tmp_path):
    _, after_info = run_companion("Segue_project_info.lua", ReaperJob("info"), tmp_path)
    job = ReaperJob("render", {"output_file": str(tmp_path / "r.wav"), "bounds": "custom", "start_seconds": "0",
                               "end_seconds": "1"})
    _, after_render = run_companion("Segue_render_selection.lua", job, tmp_path)

    assert after_info["undo"] == "" and after_render["undo"] == ""


def test_render_pins_every_setting_the_source_depends_on_and_restores_the_producers(tmp_path):
    target = tmp_path / "source.wav"
    job = ReaperJob("render", {"output_file": str(target), "bounds": "custom", "start_seconds": "1",
                               "end_seconds": "3"})

    result, after = run_companion("Segue_render_selection.lua", job, tmp_path)

    assert result["status"] == "ok", result
    rendered = {key.removeprefix("rendered_"): value for key, value in after.items() if key.startswith("rendered_")}
    assert {key: rendered[key] for key in ("RENDER_SRATE", "RENDER_CHANNELS", "RENDER_DITHER", "RENDER_NORMALIZE",
                                           "RENDER_FORMAT2", "RENDER_TAILFLAG", "RENDER_ADDTOPROJ")} == {
        "RENDER_SRATE": "0", "RENDER_CHANNELS": "2", "RENDER_DITHER": "0", "RENDER_NORMALIZE": "0",
        "RENDER_FORMAT2": "", "RENDER_TAILFLAG": "0", "RENDER_ADDTOPROJ": "0",
    }
    info = soundfile.info(target)
    assert (info.channels, info.samplerate, info.duration) == (2, 8000, pytest.approx(2.0))
    assert list(tmp_path.glob("source.*")) == [target], "no second render format"
    for key, value in PRODUCER_RENDER_SETTINGS.items():
        assert after[key] == str(value), key


def test_render_bounds_in_beats_go_through_reapers_tempo_map(tmp_path):
    target = tmp_path / "source.wav"
    job = ReaperJob("render", {"output_file": str(target), "bounds": "beats", "start_beats": "16",
                               "end_beats": "24"})

    # 96 BPM for the first 16 quarter notes (10 s), then 60 BPM.
    result, _ = run_companion("Segue_render_selection.lua", job, tmp_path, tempo_changes=[(16, 60.0)])

    assert result["status"] == "ok", result
    assert (result["start_seconds"], result["end_seconds"]) == ("10", "18")
    assert soundfile.info(target).duration == pytest.approx(8.0)


def test_a_clip_reaper_copied_into_the_project_folder_is_still_a_success(clip, tmp_path):
    result, after = run_companion(
        "Segue_insert_clip.lua", insert_job(clip, position_beats="8"), tmp_path, copy_media_to="/project/Media"
    )

    assert result["status"] == "ok", result
    assert after["track2_item1"] == f"5|1|/project/Media/{clip.name}"
