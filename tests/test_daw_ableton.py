"""Segue following and feeding Ableton Live, against a fake Live running AbletonOSC over real UDP."""

import argparse
import itertools

import numpy as np
import pytest
import soundfile

from bridge import paths
from bridge.cli import serve
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
from bridge.musical_time import TimeSignature, bars_to_samples
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


# -- what real AbletonOSC does that a first try did not expect (issue 11) ---------------------------


def test_without_the_patch_no_empty_track_is_left_in_the_set(live, link, clip):
    live.patched = False

    with pytest.raises(PlacementUnavailable, match="packaging/ableton"):
        link.place_clip(ClipTarget(clip, track_name="Segue"))
    assert [track.name for track in live.song.tracks] == ["1-Audio", "2-MIDI"]
    assert ("/live/song/create_audio_track", (-1,)) not in live.received


def test_a_clip_live_refuses_on_a_new_track_takes_the_track_away_again(tmp_path, live, link):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")

    with pytest.raises(DawError, match="Cannot read audio file"):
        link.place_clip(ClipTarget(not_audio, track_name="Segue", position_beats=4.0))
    assert [track.name for track in live.song.tracks] == ["1-Audio", "2-MIDI"]


def test_a_track_live_does_not_have_is_named_at_once(live, clip):
    # A long reply timeout: the error itself must answer, not the wait running out.
    link = AbletonLink(live_port=live.port, listen_port=0, reply_timeout_seconds=30.0)
    live.reply_port = link.listen_port
    with link:
        wait_until(lambda: link.connected, what="Live")
        with pytest.raises(DawError, match=r"^Live has no track 9; the set has 2 tracks$"):
            link.place_clip(ClipTarget(clip, track_index=8, position_beats=0.0))


def test_a_signature_is_published_only_as_a_whole(link, live):
    heard = []
    link.transport.add_listener(lambda snapshot: heard.append(snapshot.signature))

    live.set_song(signature_numerator=7, signature_denominator=8)  # from 3/4: 7/4 must never show
    assert link.transport.wait_for(lambda s: s.signature == TimeSignature(7, 8), 5)
    live.set_song(signature_numerator=3, signature_denominator=4)  # 3/8 must never show
    assert link.transport.wait_for(lambda s: s.signature == TimeSignature(3, 4), 5)

    published = [signature for signature, _ in itertools.groupby(heard) if signature is not None]
    assert published[-2:] == [TimeSignature(7, 8), TimeSignature(3, 4)]
    assert set(published) == {TimeSignature(3, 4), TimeSignature(7, 8)}


def test_no_signature_before_live_sent_both_halves():
    song = FakeSong(tempo=93.7, signature_numerator=7, signature_denominator=8)
    with FakeLive(song=song) as live, make_link(live) as link:
        first = []
        link.transport.add_listener(lambda s: first.append(s.signature) if s.signature and not first else None)
        snapshot = link.transport.wait_for(lambda s: s.tempo_and_signature_known, 5)
        assert snapshot.signature == TimeSignature(7, 8)
        assert first == [TimeSignature(7, 8)], "Segue published a signature Live never had (4/4 or 7/4)"


def test_lives_32_bit_tempo_is_the_tempo_live_shows(live, link):
    live.set_song(tempo=93.7)  # on the wire: 93.69999694824219

    snapshot = link.transport.wait_for(lambda s: s.tempo_bpm != 122.0, 5)
    assert snapshot.tempo_bpm == 93.7
    # One tempo, one length: the same bars from Live's tempo and from `--bpm 93.7`.
    signature = TimeSignature(4, 4)
    assert bars_to_samples(32, snapshot.tempo_bpm, signature, 48000) == bars_to_samples(32, 93.7, signature, 48000)


def test_a_reply_port_other_than_abletonoscs_is_refused_with_the_reason(capsys):
    parser = argparse.ArgumentParser(prog="segue")
    serve.register(parser.add_subparsers())
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["serve", "--daw", "ableton", "--ableton-reply-port", "12000"])

    assert exit_info.value.code == 2
    assert "AbletonOSC always replies to port 11001" in capsys.readouterr().err
