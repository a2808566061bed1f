"""Segue following and feeding Ableton Live, against a fake Live running AbletonOSC over real UDP."""

import numpy as np
import pytest
import soundfile

from bridge import paths
from bridge.daw.ableton import AbletonLink
from bridge.daw.placement import (
    ROUTE_ABLETON_ARRANGEMENT,
    ROUTE_ABLETON_SESSION,
    ROUTE_DRAG_AND_DROP,
    ROUTE_EXPORT_FOLDER,
    ClipPlacer,
    ClipTarget,
    PlacementUnavailable,
)
from bridge.errors import DawError
from bridge.musical_time import TimeSignature
from tests.fake_ableton import FakeLive, FakeSong
from tests.waiting import wait_until


def make_link(live: FakeLive) -> AbletonLink:
    """A link on a free port, with short timeouts so disconnection tests stay fast."""
    link = AbletonLink(live_port=live.port, listen_port=0, timeout_seconds=0.8, probe_seconds=0.2)
    live.reply_port = link.listen_port
    return link


@pytest.fixture
def live():
    song = FakeSong(
        tempo=122.0,
        signature_numerator=3,
        signature_denominator=4,
        loop=True,
        loop_start=8.0,
        loop_length=16.0,
    )
    with FakeLive(song=song) as fake:
        yield fake


@pytest.fixture
def link(live):
    with make_link(live) as connected_link:
        wait_until(lambda: connected_link.transport.snapshot().tempo_bpm, what="Live's tempo")
        yield connected_link


@pytest.fixture
def clip():
    path = paths.output_dir() / "clip.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros((3200, 2), dtype=np.float32), 32000)
    return path


def test_segue_follows_lives_song(link):
    snapshot = link.transport.wait_for(
        lambda s: s.signature is not None and s.loop_end_beats is not None and s.track_names, 5
    )
    assert snapshot.connected
    assert snapshot.tempo_bpm == pytest.approx(122.0)
    assert snapshot.signature == TimeSignature(3, 4)
    assert snapshot.loop_enabled is True
    assert (snapshot.loop_start_beats, snapshot.loop_end_beats) == (pytest.approx(8.0), pytest.approx(24.0))
    assert snapshot.loop_start_seconds == pytest.approx(8.0 * 60 / 122)
    assert snapshot.track_names == ("1-Audio", "2-MIDI")
    assert snapshot.daw_version == "12.1"
    assert snapshot.playing is False


def test_tempo_and_signature_changes_reach_segue(live, link):
    live.set_song(tempo=93.5, signature_numerator=7, signature_denominator=8)
    snapshot = link.transport.wait_for(
        lambda s: s.tempo_bpm == pytest.approx(93.5) and s.signature == TimeSignature(7, 8), 5
    )
    assert snapshot is not None


def test_the_playhead_moves_while_live_plays(live, link):
    live.set_song(is_playing=True)
    first = link.transport.wait_for(lambda s: s.playing and (s.position_beats or 0) > 0, 5)
    later = link.transport.wait_for(lambda s: s.position_beats > first.position_beats + 1, 5)
    assert later.position_seconds == pytest.approx(later.position_beats * 60 / 122)
    live.set_song(is_playing=False)
    assert link.transport.wait_for(lambda s: not s.playing, 5)


def test_live_quitting_and_coming_back_is_followed(live, link):
    port = live.port
    live.stop()
    assert link.transport.wait_for(lambda s: not s.connected, 5), "Segue should notice Live is gone"

    with FakeLive(port=port, reply_port=link.listen_port, song=FakeSong(tempo=100.0)) as restarted:
        assert link.transport.wait_for(lambda s: s.connected and s.tempo_bpm == pytest.approx(100.0), 5)
        # A restarted Live forgot Segue's listeners: a change only arrives if Segue subscribed again.
        restarted.set_song(tempo=141.0)
        assert link.transport.wait_for(lambda s: s.tempo_bpm == pytest.approx(141.0), 5)


def test_a_clip_lands_in_the_arrangement_at_a_beat(live, link, clip):
    placed = link.place_clip(ClipTarget(clip, track_index=0, position_beats=16.0))

    assert placed.route == ROUTE_ABLETON_ARRANGEMENT
    assert (placed.track_index, placed.position_beats) == (0, 16.0)
    assert live.song.tracks[0].arrangement_clips == [(16.0, str(clip))]


def test_a_clip_lands_in_a_new_tracks_first_session_slot(live, link, clip):
    placed = link.place_clip(ClipTarget(clip, track_name="Segue"))

    assert placed.route == ROUTE_ABLETON_SESSION
    assert (placed.track_index, placed.slot_index) == (2, 0)
    new_track = live.song.tracks[2]
    assert new_track.name == "Segue"
    assert new_track.clip_slots[0] == str(clip)


def test_a_full_track_gets_a_new_scene(live, link, clip):
    live.song.tracks[0].clip_slots = [str(clip)] * 4

    placed = link.place_clip(ClipTarget(clip, track_index=0))

    assert placed.slot_index == 4
    assert live.song.tracks[0].clip_slots[4] == str(clip)


def test_upstream_abletonosc_says_the_route_is_missing(live, link, clip):
    live.patched = False

    with pytest.raises(PlacementUnavailable, match="packaging/ableton"):
        link.place_clip(ClipTarget(clip, track_index=0, position_beats=0.0))
    assert live.song.tracks[0].arrangement_clips == []


def test_live_refusing_a_clip_on_a_midi_track_is_explained(link, clip):
    with pytest.raises(DawError, match="track 2 in Live is not an audio track"):
        link.place_clip(ClipTarget(clip, track_index=1, position_beats=0.0))


def test_live_refusing_an_unreadable_file_is_reported(tmp_path, link):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")

    with pytest.raises(DawError, match="Cannot read audio file"):
        link.place_clip(ClipTarget(not_audio, track_index=0, slot_index=1))


def test_without_the_patch_the_clip_falls_back_to_the_export_folder(live, link, clip, tmp_path):
    live.patched = False
    export_dir = tmp_path / "Segue export"

    placed = ClipPlacer(link, export_dir).place(ClipTarget(clip, track_index=0, position_beats=4.0))

    assert placed.route == ROUTE_EXPORT_FOLDER
    assert placed.path == export_dir / "clip.wav"
    assert placed.path.read_bytes() == clip.read_bytes()
    assert "does not know /live/track/create_audio_clip" in placed.message


def test_with_live_gone_and_no_export_folder_the_clip_is_offered_for_drag_and_drop(live, link, clip):
    live.stop()
    link.transport.wait_for(lambda s: not s.connected, 5)

    placed = ClipPlacer(link).place(ClipTarget(clip, position_beats=0.0))

    assert placed.route == ROUTE_DRAG_AND_DROP
    assert placed.path == clip.resolve()
    assert "Ableton Live is not connected" in placed.message
