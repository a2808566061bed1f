"""Step 1, source: the last N bars of the producer's music, ending exactly where the continuation starts.

Three ways in:
- capture: the DAW plays into a loopback device that Segue records all the time; the span is
  found through the DAW's playhead reports (bridge.workflow.daw_clock), shifted by the measured
  round trip, and put on the beat by the audio itself (bridge.workflow.beat_alignment);
- render: REAPER's companion script renders exactly those bars of the master mix;
- file: a dropped or chosen file, assumed to end on a bar line, at a tempo given or the DAW's.
The end is the loop (or REAPER time selection) end, or the last bar line before the playhead.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.audio.capture import Recorder
from bridge.audio.io import as_frames, read_audio
from bridge.daw.reaper import ReaperLink
from bridge.daw.transport import TransportSnapshot
from bridge.errors import AudioFileError, CaptureError, DawError, InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples, check_bpm, whole_bars_in
from bridge.workflow.beat_alignment import SEARCH_SECONDS, align_to_beats
from bridge.workflow.chain import CodesPrompt
from bridge.workflow.daw_clock import DawClock, EndPoint, last_bar_line

END_CHOICES = ("auto", "loop", "playhead")
# The engine listens to at most 30 s of audio.
MAX_SOURCE_SECONDS = 30.0
# A render may differ from the exact bar length by a rounding of its own start and end.
RENDER_LENGTH_SLACK_FRAMES = 2


@dataclass(frozen=True)
class Source:
    """Exactly `bars` bars of audio; the continuation starts where it ends, at song beat `end_beats`."""

    audio: np.ndarray  # (frames, channels) float32
    sample_rate: int
    bpm: float
    signature: TimeSignature
    bars: int
    kind: str  # "capture", "render", "file" or "take" (a placed take being continued again)
    end_beats: float | None = None  # quarter notes from the song start; None: unknown (a file alone)
    path: Path | None = None
    clip_id: int | None = None  # the library clip this source is (a placed take)
    codes_prompt: CodesPrompt | None = None  # a placed take continues from its codes
    note: str = ""  # how it was aligned, for the producer

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate

    def describe(self) -> str:
        where = {"capture": "captured from the loopback", "render": "rendered by REAPER", "take": "of the placed take"}
        text = f"{self.bars} bar{'s' if self.bars != 1 else ''} {where.get(self.kind, 'of ' + (self.path.name if self.path else 'the file'))}"
        if self.end_beats is not None:
            text += f", ending at bar {self.end_beats / self.signature.quarter_notes_per_bar + 1:g}"
        return text + f" ({self.bpm:g} BPM, {self.signature})"


def check_bars(bars: int, bpm: float, signature: TimeSignature) -> int:
    if not isinstance(bars, int) or bars < 1:
        raise InvalidParameterError(f"the source must be at least one bar, got {bars}")
    seconds = bars * signature.quarter_notes_per_bar * 60.0 / check_bpm(bpm)
    if seconds > MAX_SOURCE_SECONDS:
        fitting = max(1, math.floor(MAX_SOURCE_SECONDS / (seconds / bars)))
        raise InvalidParameterError(
            f"{bars} bars at {bpm:g} BPM last {seconds:.1f} s; the model listens to at most "
            f"{MAX_SOURCE_SECONDS:g} s: use {fitting} bars or fewer"
        )
    return bars


def session_tempo(snapshot: TransportSnapshot) -> tuple[float, TimeSignature]:
    """The DAW's tempo and time signature; DawError when the DAW has not said both."""
    if snapshot.daw == "none":
        raise DawError("no DAW is linked, so the session's tempo is unknown: link one, or give the tempo")
    if not snapshot.connected or not snapshot.tempo_bpm:
        state = "has not reported its tempo yet" if snapshot.connected else "is not connected"
        raise DawError(f"the DAW ({snapshot.daw}) {state}")
    if snapshot.signature is None:
        hint = "; install Segue's project info script (packaging/reaper/INSTALL.md)" if snapshot.daw == "reaper" else ""
        raise DawError(f"the DAW ({snapshot.daw}) has not reported its time signature yet{hint}")
    return snapshot.tempo_bpm, snapshot.signature


def end_beats(snapshot: TransportSnapshot, end: str = "auto") -> float:
    """Where the source ends in the song: the loop end, or the last bar line before the playhead.

    `end` is "loop", "playhead", or "auto" (the loop end when the loop is on).
    """
    if end not in END_CHOICES:
        raise InvalidParameterError(f"the source ends at the loop, the playhead or auto, not {end!r}")
    _, signature = session_tempo(snapshot)
    use_loop = end == "loop" or (end == "auto" and snapshot.loop_enabled and snapshot.loop_end_beats)
    if use_loop:
        if not snapshot.loop_end_beats:
            raise DawError("the DAW reports no loop (or time selection): set one, or use the playhead")
        return float(snapshot.loop_end_beats)
    if snapshot.position_beats is None:
        raise DawError("the DAW has not reported its playhead position yet")
    return last_bar_line(snapshot.position_beats, signature.quarter_notes_per_bar)


def last_bars(audio: np.ndarray, frames: int, slack_frames: int = 0) -> np.ndarray:
    """The last `frames` frames; up to `slack_frames` missing ones are added as silence at the start."""
    audio = as_frames(audio)
    if audio.shape[0] >= frames:
        return np.ascontiguousarray(audio[audio.shape[0] - frames :])
    if frames - audio.shape[0] > slack_frames:
        raise AudioFileError(f"the audio holds {audio.shape[0]} frames, {frames} were needed")
    return np.concatenate([np.zeros((frames - audio.shape[0], audio.shape[1]), np.float32), audio])


# -- file ----------------------------------------------------------------------------------------


def source_from_file(
    path: str | Path,
    bars: int,
    bpm: float,
    signature: TimeSignature,
    end_at_beats: float | None = None,
) -> Source:
    """The last `bars` bars of an audio file that ends on a bar line (fewer if it is shorter).

    Raises AudioFileError for an unreadable file or one shorter than a bar.
    """
    check_bars(bars, bpm, signature)
    audio, rate = read_audio(path)
    whole = whole_bars_in(audio.shape[0], bpm, signature, rate)
    if whole < 1:
        raise AudioFileError(f"{Path(path).name} is shorter than one bar at {bpm:g} BPM in {signature}")
    used = min(bars, whole)
    note = "" if used == bars else f"the file holds {whole} whole bar{'s' if whole != 1 else ''}: continuing those"
    audio = last_bars(audio, bars_to_samples(used, bpm, signature, rate))
    return Source(audio, rate, bpm, signature, used, "file", end_at_beats, Path(path).resolve(), note=note)


# -- REAPER render -------------------------------------------------------------------------------


def source_from_render(link: ReaperLink, bars: int, end: str = "auto", output_file: Path | None = None) -> Source:
    """REAPER renders the `bars` bars before the loop end or the playhead (its companion script)."""
    snapshot = link.transport.snapshot()
    bpm, signature = session_tempo(snapshot)
    check_bars(bars, bpm, signature)
    stop_beats = end_beats(snapshot, end)
    start_beats = stop_beats - bars * signature.quarter_notes_per_bar
    if start_beats < -1e-9:
        raise InvalidParameterError(
            f"there are only {stop_beats / signature.quarter_notes_per_bar:g} bars before the end chosen; "
            "use fewer bars or move the playhead"
        )
    # Beats, not seconds: REAPER turns them into time through its tempo map, as it does when inserting.
    rendered = link.render(output_file, start_beats=max(0.0, start_beats), end_beats=stop_beats)
    audio, rate = read_audio(rendered.path)
    frames = bars_to_samples(bars, bpm, signature, rate)
    audio = last_bars(audio, frames, RENDER_LENGTH_SLACK_FRAMES)
    return Source(audio, rate, bpm, signature, bars, "render", stop_beats, rendered.path)


# -- loopback capture ----------------------------------------------------------------------------


def source_from_capture(
    recorder: Recorder,
    clock: DawClock,
    snapshot: TransportSnapshot,
    bars: int,
    end: str = "auto",
    timeout_seconds: float | None = None,
) -> Source:
    """The `bars` bars the DAW played into the loopback before the chosen end, on the bar line.

    If the end has not been played yet (the loop end ahead of the playhead, or too little heard so
    far), waits for it, up to `timeout_seconds` (default: as long as the wait should take, plus 2 s).
    Raises CaptureError when the DAW did not play those bars without a break.
    """
    bpm, signature = session_tempo(snapshot)
    check_bars(bars, bpm, signature)
    rate = recorder.sample_rate
    span = bars_to_samples(bars, bpm, signature, rate)
    search = round(SEARCH_SECONDS * rate)
    predicted = _find_end(clock, snapshot, bars, signature, span, end)
    if timeout_seconds is None:
        timeout_seconds = max(0.0, (predicted.frame - recorder.frames_recorded) / rate) + 2.0
    stop = round(predicted.frame)
    recorder.frames(stop - span - search, stop + search, timeout_seconds=timeout_seconds)
    # The DAW may have stopped or jumped while Segue waited: check what was really heard.
    heard = clock.find_end(predicted.beat, span)
    if heard is None or not heard.heard or not heard.follows(span, rate) or abs(heard.frame - predicted.frame) > search:
        raise CaptureError(
            f"the DAW stopped or jumped before bar {_bar_number(predicted.beat, signature)}: let it play through"
        )
    stop = round(heard.frame)
    window = recorder.frames(stop - span - search, stop + search)
    alignment = align_to_beats(window, rate, search, bars, bpm, signature)
    if alignment.used:
        clock.correct(alignment.offset_frames)
    start = search + alignment.offset_frames
    note = (
        f"on the beat by the audio ({1000 * alignment.offset_frames / rate:+.1f} ms from the DAW's report)"
        if alignment.used
        else "placed by the DAW's playhead only (no clear beat in the audio)"
    )
    audio = np.ascontiguousarray(window[start : start + span])
    return Source(audio, rate, bpm, signature, bars, "capture", predicted.beat, note=note)


def _bar_number(beat: float, signature: TimeSignature) -> str:
    return f"{beat / signature.quarter_notes_per_bar + 1:g}"


def _find_end(
    clock: DawClock, snapshot: TransportSnapshot, bars: int, signature: TimeSignature, span: int, end: str
) -> EndPoint:
    """Where the source ends in the recording: the loop end, or the last bar line before the playhead
    with `bars` bars of playback before it (the next such bar line if too little was heard yet)."""
    rate = clock.recorder.sample_rate
    qpb = signature.quarter_notes_per_bar
    if end not in END_CHOICES:
        raise InvalidParameterError(f"the source ends at the loop, the playhead or auto, not {end!r}")
    use_loop = end == "loop" or (end == "auto" and snapshot.loop_enabled and snapshot.loop_end_beats)
    if use_loop:
        wanted = end_beats(snapshot, "loop")
    else:
        playhead = clock.playhead_beat()
        if playhead is None:
            raise CaptureError("Segue has not heard the DAW play yet: start playback (Segue captures what it hears)")
        wanted = last_bar_line(playhead, qpb)
    found = clock.find_end(wanted, span)
    run = clock.current_run()
    if not use_loop and found is not None and not found.follows(span, rate) and run is not None:
        # Too little heard before that bar line yet: the first bar line with enough playback before it.
        first_beat = run.beat_at(found.heard_from_frame - clock.correction_frames)
        wanted = math.ceil((first_beat + bars * qpb) / qpb - 1e-6) * qpb
        found = clock.find_end(wanted, span)
    if found is None:
        raise CaptureError(f"Segue did not hear the DAW play up to bar {_bar_number(wanted, signature)}: start playback")
    if not found.follows(span, rate):
        heard_bars = max(0.0, (found.frame - found.heard_from_frame) / (span / bars))
        raise CaptureError(
            f"Segue heard only {heard_bars:.1f} of the {bars} bars before bar {_bar_number(wanted, signature)}: "
            "play from further back, or capture fewer bars"
        )
    return found
