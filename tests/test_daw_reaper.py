"""Segue following and feeding REAPER, against a fake REAPER (OSC surface + companion scripts) over real UDP."""

import numpy as np
import pytest
import soundfile

from bridge import paths
from bridge.daw.placement import ROUTE_EXPORT_FOLDER, ROUTE_REAPER, ClipPlacer, ClipTarget
from bridge.daw.reaper import ReaperLink
from bridge.daw.reaper_jobs import JOB_FILE, ReaperJob, default_exchange_dir
from bridge.errors import DawError, InvalidParameterError
from bridge.musical_time import TimeSignature
from bridge.workflow.source import source_from_render
from tests.fake_reaper import FakeItem, FakeProject, FakeReaper
from tests.waiting import wait_until


def make_link(reaper: FakeReaper, **options) -> ReaperLink:
    link = ReaperLink(
        reaper_port=reaper.port,
        listen_port=0,
        heartbeat_seconds=0.3,
        timeout_seconds=1.0,
        probe_seconds=0.3,
        **options,
    )
    reaper.device_port = link.listen_port
    return link


@pytest.fixture
def reaper():
    project = FakeProject(tempo=96.0, signature=(6, 8))
    with FakeReaper(project=project) as fake:
        yield fake


@pytest.fixture
def link(reaper):
    with make_link(reaper) as connected:
        wait_until(lambda: connected.transport.snapshot().tempo_bpm, what="REAPER's tempo")
        yield connected


@pytest.fixture
def clip():
    path = paths.output_dir() / "take 1.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros((48000, 2), dtype=np.float32), 48000)
    return path


def test_segue_asks_reaper_for_everything_on_connect(reaper, link):
    snapshot = link.transport.wait_for(lambda s: s.signature is not None and s.track_names, 5)

    assert ("/action/41743", ()) in reaper.received
    assert snapshot.connected
    assert snapshot.tempo_bpm == pytest.approx(96.0)
    # Native OSC has no time signature: it comes from the project info script.
    assert snapshot.signature == TimeSignature(6, 8)
    assert snapshot.track_names == ("Drums", "Bass")
    assert snapshot.playing is False


def test_transport_follows_play_tempo_and_loop(reaper, link):
    reaper.set_loop(2.0, 6.0)
    reaper.set_tempo(150.0)
    reaper.play()

    snapshot = link.transport.wait_for(
        lambda s: (
            s.playing
            and (s.position_seconds or 0) > 0.2
            and s.daw_bar_beat is not None
            and s.tempo_bpm == pytest.approx(150.0)
        ),
        5,
    )
    assert snapshot.loop_enabled
    assert (snapshot.loop_start_seconds, snapshot.loop_end_seconds) == (2.0, 6.0)
    assert snapshot.loop_start_beats == pytest.approx(5.0)
    assert snapshot.position_beats == pytest.approx(snapshot.position_seconds * 150 / 60)
    assert snapshot.bar_and_beat()[0] == 1

    reaper.stop_playing()
    assert link.transport.wait_for(lambda s: not s.playing, 5)


def test_a_quiet_reaper_is_kept_alive_by_segues_own_script_not_by_refreshing_every_surface(reaper, link):
    """REAPER says nothing while stopped. "Refresh all surfaces" (41743) would reset every control
    surface the producer has, so it goes out once per connection; the liveness check is Segue's
    project info script, which touches nothing but Segue's files."""
    info_runs = len([job for job in reaper.scripts.jobs if job["action"] == "info"])
    wait_until(lambda: len([job for job in reaper.scripts.jobs if job["action"] == "info"]) >= info_runs + 4, 10,
               "liveness checks")

    assert link.transport.snapshot().connected
    assert reaper.received.count(("/action/41743", ())) == 1
    assert reaper.project.undo_points == []


def test_reaper_disappearing_and_coming_back(reaper, link):
    port = reaper.port
    reaper.stop()
    assert link.transport.wait_for(lambda s: not s.connected, 5)

    with FakeReaper(port=port, device_port=link.listen_port, project=FakeProject(tempo=77.0)):
        assert link.transport.wait_for(lambda s: s.connected and s.tempo_bpm == pytest.approx(77.0), 5)


def test_the_insert_script_places_a_clip_at_a_beat_in_one_undo_step(reaper, link, clip):
    reaper.project.cursor_seconds = 3.25

    placed = link.place_clip(ClipTarget(clip, track_index=1, position_beats=8.0))

    assert placed.route == ROUTE_REAPER
    assert placed.track_index == 1
    item = reaper.project.tracks[1].items[0]
    assert (item.file, item.position_seconds, item.length_seconds) == (str(clip), 5.0, 1.0)
    assert reaper.project.undo_points == ["Segue: insert clip"]
    assert reaper.project.cursor_seconds == 3.25
    assert not (default_exchange_dir() / JOB_FILE).exists()


def test_the_insert_script_makes_a_new_track_and_uses_the_edit_cursor(reaper, link, clip):
    reaper.project.cursor_seconds = 1.5

    placed = link.place_clip(ClipTarget(clip, track_name="Segue ideas"))

    assert placed.track_index == 2
    new_track = reaper.project.tracks[2]
    assert new_track.name == "Segue ideas"
    assert new_track.items[0].position_seconds == 1.5


def test_the_insert_scripts_error_is_reported(reaper, link, tmp_path):
    not_audio = tmp_path / "lyrics.wav"
    not_audio.write_text("la la la")

    with pytest.raises(DawError, match="REAPER could not insert .*lyrics.wav"):
        link.place_clip(ClipTarget(not_audio, track_index=0))
    assert reaper.project.tracks[0].items == []


def test_a_missing_script_times_out_with_a_clear_error_and_falls_back(reaper, clip, tmp_path):
    reaper.actions.clear()
    with make_link(reaper, insert_timeout_seconds=0.5, info_timeout_seconds=0.5) as link:
        link.transport.wait_for(lambda s: s.connected, 5)
        with pytest.raises(DawError, match="did not run the Segue insert script.*INSTALL.md"):
            link.place_clip(ClipTarget(clip, track_index=0))
        assert not (link.exchange_dir / JOB_FILE).exists(), "a late trigger must not find the job"

        placed = ClipPlacer(link, tmp_path / "export").place(ClipTarget(clip, track_index=0))
    assert placed.route == ROUTE_EXPORT_FOLDER
    assert placed.path.is_file()


def test_a_wrong_command_id_is_caught_by_the_script(reaper, clip):
    with make_link(reaper, insert_action="_SEGUE_RENDER_SELECTION") as link:
        link.transport.wait_for(lambda s: s.connected, 5)
        with pytest.raises(DawError, match="this job is for the Segue insert script, not the render script"):
            link.place_clip(ClipTarget(clip, track_index=0))
    assert reaper.project.tracks[0].items == []


def test_rendering_the_time_selection_for_a_continuation(reaper, link):
    reaper.project.time_selection = (4.0, 6.5)

    rendered = link.render()

    assert (rendered.start_seconds, rendered.end_seconds) == (4.0, 6.5)
    info = soundfile.info(rendered.path)
    assert info.frames == round(2.5 * 48000)
    assert reaper.project.render_settings["RENDER_FORMAT"] == "l3pm", "the producer's settings are restored"
    assert reaper.project.render_settings["RENDER_PATTERN"] == "$project"


def test_rendering_given_bounds(reaper, link, tmp_path):
    rendered = link.render(tmp_path / "bars 5-8.wav", start_seconds=10.0, end_seconds=12.0)

    assert rendered.path == tmp_path / "bars 5-8.wav"
    assert soundfile.info(rendered.path).duration == pytest.approx(2.0)


def test_rendering_without_a_time_selection_says_what_to_do(link):
    with pytest.raises(DawError, match="select a time range in REAPER first"):
        link.render()


def test_values_with_line_breaks_never_reach_the_job_file():
    with pytest.raises(InvalidParameterError, match="line breaks"):
        ReaperJob("insert", {"file": "/tmp/a.wav\naction=render"}).to_text()


# -- what REAPER's API documentation says that a first try did not expect (issue 11) ---------------


@pytest.mark.parametrize("command_id", ["SEGUE_INSERT_CLIP", "RS2f4e9a", "41743"])
def test_a_command_id_without_its_underscore_is_refused_with_the_reason(command_id):
    with pytest.raises(InvalidParameterError, match="start with '_'") as refused:
        ReaperLink(listen_port=0, insert_action=command_id)
    assert f"did you mean _{command_id}?" in str(refused.value)


def test_a_clip_dropped_inside_an_item_with_trim_behind_on_is_placed_once(reaper, link, clip, tmp_path):
    bed = tmp_path / "bed.wav"
    soundfile.write(bed, np.zeros((10 * 48000, 2), dtype=np.float32), 48000)
    reaper.project.tracks[1].items.append(FakeItem(str(bed), 0.0, 10.0))
    reaper.project.trim_behind = True

    placed = link.place_clip(ClipTarget(clip, track_index=1, position_beats=8.0))

    assert placed.route == ROUTE_REAPER
    items = [(item.file, item.position_seconds, item.length_seconds) for item in reaper.project.tracks[1].items]
    assert items == [(str(bed), 0.0, 5.0), (str(clip), 5.0, 1.0), (str(bed), 6.0, 4.0)]
    assert reaper.project.undo_points == ["Segue: insert clip"]


def test_a_refused_insert_leaves_no_new_track_behind(reaper, link, clip):
    reaper.project.refuse_insert = True

    with pytest.raises(DawError, match="REAPER could not insert"):
        link.place_clip(ClipTarget(clip, track_name="Segue"))
    assert [track.name for track in reaper.project.tracks] == ["Drums", "Bass"]


def test_the_last_bars_are_rendered_by_beats_through_reapers_tempo_map(reaper, link):
    reaper.set_loop(2.5, 5.0)  # at 96 BPM the loop ends on beat 8, the end of bar 3 of 6/8
    link.transport.wait_for(lambda s: s.loop_end_seconds == 5.0 and s.tempo_and_signature_known, 5)

    source = source_from_render(link, 2, "loop")

    job = reaper.scripts.jobs[-1]
    assert (job["bounds"], job["start_beats"], job["end_beats"]) == ("beats", "2", "8")
    assert source.audio.shape == (round(3.75 * 48000), 2)
    settings = reaper.project.render_settings
    assert (settings["RENDER_CHANNELS"], settings["RENDER_NORMALIZE"], settings["RENDER_FORMAT2"]) == (1, 1, "l3pm")


def test_reapers_32_bit_tempo_is_the_tempo_the_project_has(reaper, link):
    reaper.set_tempo(93.7)  # on the wire: 93.69999694824219
    assert link.transport.wait_for(lambda s: s.tempo_bpm == 93.7, 5)
