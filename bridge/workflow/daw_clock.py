"""Where the DAW's beats land in Segue's recording of it, learned from the playhead reports.

While the DAW plays, its link reports the playhead (Live: song time in beats; REAPER: seconds, turned
into beats with the tempo). Each report is stamped with the recorder's stream clock the moment it
arrives, which places it in the recording (plus the measured round trip, bridge.audio.capture): so
every report says where beat 0 of the song would lie in the recording. Reports come late, never
early, so within one run of steady playback the earliest such origin is the truest, and the most
recent reports are used so that a slow drift between the DAW's clock and the audio device's does not
pile up. A jump (loop wrap, seek, tempo change, stop) starts a new run; the runs that follow each
other without a gap are one stretch of audio the producer heard.

What the reports cannot see (the DAW's own output latency) is measured from the audio itself when a
capture is aligned to the beat (bridge.workflow.beat_alignment), and kept as `correction_frames`.
"""

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from bridge.audio.capture import BeatAnchor, Recorder
from bridge.daw.transport import TransportSnapshot, TransportState
from bridge.errors import DawError

# A report whose origin is this far from its run's starts a new run (seek, loop wrap).
JUMP_SECONDS = 0.2
# Consecutive runs closer than this (reports are a poll apart) are one stretch of heard audio.
GAP_SECONDS = 0.6
REPORT_SLACK_SECONDS = 0.3
RECENT_REPORTS = 64
MAX_CORRECTION_SECONDS = 0.1
MAX_RUNS = 256


@dataclass
class PlayRun:
    """One stretch of steady playback: beat b lies at recording frame origin + b * frames_per_beat."""

    tempo_bpm: float
    frames_per_beat: float
    first_frame: float
    last_frame: float
    first_beat: float
    last_beat: float
    open: bool = True
    origins: deque = field(default_factory=lambda: deque(maxlen=RECENT_REPORTS))

    @property
    def origin(self) -> float:
        return min(self.origins)

    def frame_of(self, beat: float) -> float:
        return self.origin + beat * self.frames_per_beat

    def beat_at(self, frame: float) -> float:
        return (frame - self.origin) / self.frames_per_beat


@dataclass(frozen=True)
class EndPoint:
    """Where the chosen end of the source lies in the recording, and whether it has been heard yet."""

    beat: float
    frame: float
    heard: bool
    heard_from_frame: float  # where the uninterrupted playback leading to it began

    def follows(self, span_frames: float, sample_rate: int) -> bool:
        """True if the playback leading to this end lasted `span_frames` (the first playhead report
        of a run arrives up to a poll after playback started, hence the slack)."""
        return self.frame - self.heard_from_frame >= span_frames - REPORT_SLACK_SECONDS * sample_rate


class DawClock:
    """Follows `transport` and stamps its playhead reports on `recorder`'s clock.

    start() subscribes; close() unsubscribes. Safe to query from any thread.
    """

    def __init__(self, transport: TransportState, recorder: Recorder) -> None:
        self.transport = transport
        self.recorder = recorder
        self.correction_frames = 0.0
        self._runs: deque[PlayRun] = deque(maxlen=MAX_RUNS)
        self._last_report: tuple[float, float] | None = None
        self._lock = threading.Lock()
        self._remove_listener = None

    def start(self) -> "DawClock":
        if self._remove_listener is None:
            self._remove_listener = self.transport.add_listener(self._on_snapshot)
        return self

    def close(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    # -- reports (the DAW link's receive thread) ---------------------------------------------------

    def _on_snapshot(self, snapshot: TransportSnapshot) -> None:
        if not snapshot.playing or snapshot.position_beats is None or not snapshot.tempo_bpm:
            with self._lock:
                if self._runs:
                    self._runs[-1].open = False
            return
        report = (snapshot.position_beats, snapshot.tempo_bpm)
        if report == self._last_report:
            return  # something else changed; the playhead report is the same one
        self._last_report = report
        try:
            frame = self.recorder.beat_frame(BeatAnchor(snapshot.position_beats, self.recorder.stream_time()))
        except Exception:  # the recorder is not running or has no timing yet: nothing to learn
            return
        self.add_report(snapshot.position_beats, snapshot.tempo_bpm, frame)

    def add_report(self, beat: float, tempo_bpm: float, frame: float) -> None:
        """The DAW was at `beat` (quarter notes) when its sound reached recording frame `frame`."""
        rate = self.recorder.sample_rate
        frames_per_beat = 60.0 / tempo_bpm * rate
        origin = frame - beat * frames_per_beat
        with self._lock:
            run = self._runs[-1] if self._runs else None
            if (
                run is None
                or not run.open
                or run.tempo_bpm != tempo_bpm
                or abs(origin - run.origin) > JUMP_SECONDS * rate
            ):
                if run is not None:
                    run.open = False
                run = PlayRun(tempo_bpm, frames_per_beat, frame, frame, beat, beat)
                self._runs.append(run)
            run.origins.append(origin)
            run.last_frame, run.last_beat = frame, beat

    def correct(self, frames: float) -> None:
        """The audio showed the beats `frames` later than the reports said: remember it (within
        MAX_CORRECTION_SECONDS: a DAW's output latency is never longer; a misheard beat is not kept)."""
        limit = MAX_CORRECTION_SECONDS * self.recorder.sample_rate
        self.correction_frames = max(-limit, min(limit, self.correction_frames + frames))

    # -- queries -----------------------------------------------------------------------------------

    def wait_for_run(self, timeout_seconds: float) -> PlayRun | None:
        """The run playing now, waiting up to `timeout_seconds` for the DAW's first report."""
        deadline = time.monotonic() + timeout_seconds
        while (run := self.current_run()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return run

    def current_run(self) -> PlayRun | None:
        with self._lock:
            return self._runs[-1] if self._runs and self._runs[-1].open else None

    def frame_of_beat(self, beat: float) -> float:
        """Where `beat` lies (or will lie) in the recording, by the run playing now."""
        run = self.current_run()
        if run is None:
            raise DawError("the DAW is not playing: start playback so Segue can follow its bars")
        return run.frame_of(beat) + self.correction_frames

    def beat_at_frame(self, frame: float) -> float:
        run = self.current_run()
        if run is None:
            raise DawError("the DAW is not playing: start playback so Segue can follow its bars")
        return run.beat_at(frame - self.correction_frames)

    def playhead_beat(self) -> float | None:
        """The beat the DAW's sound has reached in the recording (the latest run, even if stopped)."""
        with self._lock:
            run = self._runs[-1] if self._runs else None
        if run is None:
            return None
        frame = self.recorder.frames_recorded if run.open else run.last_frame + self.correction_frames
        return run.beat_at(frame - self.correction_frames)

    def find_end(self, end_beat: float, span_frames: float) -> EndPoint | None:
        """Where the playhead reached `end_beat` after `span_frames` of uninterrupted playback: the
        latest time it did, else the time it will if it is playing towards it now. When neither holds,
        the latest time it reached `end_beat` at all (its `heard_from_frame` tells how much was heard
        before), or None.
        """
        rate = self.recorder.sample_rate
        slack = GAP_SECONDS * rate
        with self._lock:
            runs = list(self._runs)
        candidates = []
        for position in range(len(runs) - 1, -1, -1):
            run = runs[position]
            frame = run.frame_of(end_beat)
            upcoming = run.open and frame > run.last_frame
            if not upcoming and not run.first_frame - slack <= frame <= run.last_frame + slack:
                continue
            start = run.first_frame
            for earlier in reversed(runs[:position]):
                if earlier.last_frame < start - slack:
                    break
                start = min(start, earlier.first_frame)
            frame += self.correction_frames
            heard = frame <= self.recorder.frames_recorded
            candidates.append(EndPoint(end_beat, frame, heard, start + self.correction_frames))
        long_enough = [candidate for candidate in candidates if candidate.follows(span_frames, rate)]
        for wanted in (True, False):
            for candidate in long_enough:
                if candidate.heard == wanted:
                    return candidate
        return candidates[0] if candidates else None


def last_bar_line(beat: float, quarter_notes_per_bar: float) -> float:
    """The bar line at or before `beat` (a beat within a millionth of a bar line counts as on it)."""
    return math.floor(beat / quarter_notes_per_bar + 1e-6) * quarter_notes_per_bar
