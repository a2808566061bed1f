"""The transport model both DAW links fill in: units, bars, change notifications."""

import pytest

from bridge.daw.placement import ClipPlacer, ClipTarget, export_copy
from bridge.daw.transport import TransportState
from bridge.errors import DawError
from bridge.musical_time import TimeSignature


def test_live_reports_beats_and_segue_derives_seconds():
    state = TransportState("ableton")
    state.update(tempo_bpm=120.0, position_beats=6.0, loop_start_beats=4.0, loop_end_beats=12.0)

    snapshot = state.snapshot()
    assert (snapshot.position_seconds, snapshot.loop_start_seconds, snapshot.loop_end_seconds) == (
        3.0,
        2.0,
        6.0,
    )


def test_reaper_reports_seconds_and_a_tempo_change_moves_the_beat_position():
    state = TransportState("reaper")
    state.update(position_seconds=3.0)
    assert state.snapshot().position_beats is None, "no tempo yet: beats are unknown"

    state.update(tempo_bpm=100.0)
    assert state.snapshot().position_beats == pytest.approx(5.0)
    state.update(tempo_bpm=140.0)
    assert state.snapshot().position_beats == pytest.approx(7.0)
    assert state.snapshot().position_seconds == 3.0


@pytest.mark.parametrize(
    ("beats", "signature", "bar_and_beat"),
    [(0.0, (4, 4), (1, 1.0)), (9.5, (4, 4), (3, 2.5)), (7.0, (7, 8), (3, 1.0)), (3.0, (6, 8), (2, 1.0))],
)
def test_bar_and_beat_as_the_daw_shows_them(beats, signature, bar_and_beat):
    state = TransportState("ableton")
    state.update(position_beats=beats, signature=TimeSignature(*signature))
    assert state.snapshot().bar_and_beat() == pytest.approx(bar_and_beat)


def test_the_daws_own_bar_display_wins():
    state = TransportState("reaper")
    state.update(tempo_bpm=120.0, position_seconds=1.0, daw_bar_beat=(17, 3.25))
    assert state.snapshot().bar_and_beat() == (17, 3.25)


def test_listeners_hear_changes_only():
    state = TransportState("ableton")
    heard = []
    remove = state.add_listener(heard.append)

    state.update(tempo_bpm=120.0)
    state.update(tempo_bpm=120.0)
    state.set_connected(True)
    remove()
    state.update(tempo_bpm=90.0)

    assert [(s.tempo_bpm, s.connected) for s in heard] == [(120.0, False), (120.0, True)]


def test_unknown_values_are_refused():
    with pytest.raises(TypeError, match="bpm"):
        TransportState("ableton").update(bpm=120.0)


def test_export_copies_never_overwrite(tmp_path):
    clip = tmp_path / "take.wav"
    clip.write_bytes(b"RIFF")
    export_dir = tmp_path / "export"

    first, second = export_copy(clip, export_dir), export_copy(clip, export_dir)

    assert (first.name, second.name) == ("take.wav", "take (2).wav")
    assert sorted(p.name for p in export_dir.iterdir()) == ["take (2).wav", "take.wav"]


def test_a_missing_clip_cannot_be_placed(tmp_path):
    with pytest.raises(DawError, match="does not exist"):
        ClipPlacer(None, tmp_path).place(ClipTarget(tmp_path / "gone.wav"))


def test_no_bar_length_before_the_daw_said_both_tempo_and_signature():
    from bridge.workflow.source import session_tempo

    state = TransportState("ableton")
    state.set_connected(True)
    state.update(tempo_bpm=93.7)  # Live's tempo arrives first; its signature is on the way
    assert not state.snapshot().tempo_and_signature_known
    with pytest.raises(DawError, match="has not reported its time signature yet"):
        session_tempo(state.snapshot())

    state.update(signature=TimeSignature(7, 8))
    assert state.snapshot().tempo_and_signature_known
    assert session_tempo(state.snapshot()) == (93.7, TimeSignature(7, 8))
