"""ContinueMyTrack: the bar-locked continuation workflow, one object shared by the CLI, `segue serve` and the panel.

    session = ContinueMyTrack(engine, link=link, recorder=recorder, player=player, library=library)
    source = session.source_from_daw(bars=4)                 # 1. the last 4 bars (capture or render)
    hints = session.suggest(source)                          # 2. key/tempo suggestions to accept
    result = session.continue_source(source, ContinueOptions(prompt="add strings", key=hints.key_text))
    session.place(result, 0)                                 # 5. at the bar where the source ends
    session.play(result, 0)                                  #    or live, on the next bar line
    again = session.continue_again(ContinueOptions())        # 6. from the end of the placed take

Every call blocks until done: the panel and the OSC server call them from a worker thread. The
engine is anything with submit() and cancel() (EngineClient); whoever owns it must pass its events
to `on_engine_event`.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from bridge import paths
from bridge.audio.capture import Recorder
from bridge.audio.io import write_audio_atomic
from bridge.audio.playback import Player
from bridge.daw.link import DawLink, NoDawLink
from bridge.daw.placement import DEFAULT_TRACK_NAME, ClipPlacer, PlacedClip
from bridge.daw.reaper import ReaperLink
from bridge.engine.events import (
    AudioChunk,
    EngineEvent,
    GenerationResult,
    JobCancelled,
    JobFailed,
    JobFinished,
    Progress,
    PromptPrepared,
)
from bridge.engine.melody_timeline import melody_with_lead_in
from bridge.engine.request import DEFAULT_MODEL, MAX_VARIATIONS, GenerationRequest
from bridge.engine.schedule import start_threshold_seconds, stream_lag_seconds
from bridge.errors import CancelledError, DawError, InvalidParameterError, SegueError
from bridge.library import ClipInfo, ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow.chain import CODEC_FRAMES_PER_SECOND, MUSICGEN_SAMPLE_RATE, codes_prompt
from bridge.workflow.daw_clock import DawClock
from bridge.workflow.describe import Suggestions, continuation_text, suggest
from bridge.workflow.fit import FitReport, fit_take
from bridge.workflow.place import LivePlay, place_take, play_on_next_bar
from bridge.workflow.preparation import Preparer
from bridge.workflow.source import (
    Source,
    check_bars,
    session_tempo,
    source_from_capture,
    source_from_file,
    source_from_render,
)

log = logging.getLogger(__name__)

# Asked of the engine beyond the bars, so resampling to the source's rate never comes up short.
EXTRA_MODEL_FRAMES = 640
MAX_NEW_BARS = 64
KEPT_CAPTURES = 50
# How long a capture waits for the DAW's first playhead report.
FIRST_REPORT_SECONDS = 2.0
# Audio buffered before the audition of a take still being generated starts, until speed is known.
FALLBACK_AUDITION_BUFFER_SECONDS = 2.0
TAG = "continuation"


def keep_capture(source: Source) -> Path:
    """Save a captured source in the data folder (takes name it as what they continue); only the
    newest KEPT_CAPTURES stay, so the folder does not grow without end."""
    folder = paths.data_dir() / "captures"
    path = folder / f"capture-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}.wav"
    write_audio_atomic(path, source.audio, source.sample_rate)
    for old in sorted(folder.glob("capture-*.wav"))[:-KEPT_CAPTURES]:
        old.unlink(missing_ok=True)
    return path


class EnginePort(Protocol):
    """What the workflow needs of bridge.engine.worker.EngineClient."""

    def submit(self, request: GenerationRequest) -> int: ...

    def cancel(self, job_id: int) -> None: ...

    # Optional (EngineClient has it; a remote engine may not): prepare(request) -> id, see prepare_source.


@dataclass
class ContinueOptions:
    """Step 2 and 3's choices: the words, the accepted key, how much and how many."""

    prompt: str = ""
    bars: int = 4
    takes: int = 2
    key: str | None = None  # an accepted key suggestion ("A minor"), or None
    model: str = DEFAULT_MODEL
    seed: int | None = None
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg: float = 3.0
    quality: str = "auto"
    reroll_silent_start: bool = True
    max_rerolls: int = 2
    # A melody to follow as well (melody models): (frames,) or (frames, channels) audio at
    # `melody_sample_rate` that starts on a bar line, e.g. the chord track's captured bars or a take.
    melody: np.ndarray | None = field(default=None, repr=False)
    melody_sample_rate: int | None = None

    def check(self) -> "ContinueOptions":
        if not isinstance(self.bars, int) or not 1 <= self.bars <= MAX_NEW_BARS:
            raise InvalidParameterError(f"a continuation lasts 1-{MAX_NEW_BARS} bars, got {self.bars}")
        if not isinstance(self.takes, int) or not 1 <= self.takes <= MAX_VARIATIONS:
            raise InvalidParameterError(f"takes must be 1-{MAX_VARIATIONS}, got {self.takes}")
        if self.max_rerolls < 0:
            raise InvalidParameterError(f"re-rolls must not be negative, got {self.max_rerolls}")
        return self


@dataclass
class FittedTake:
    """One take, fitted to its source and written to the output folder (and the library)."""

    index: int
    seed: int
    audio: np.ndarray  # at the source's sample rate and channels, exactly the continuation's bars
    sample_rate: int
    report: FitReport
    codes: np.ndarray | None  # the engine's codes, for "continue again"
    codes_lead_frames: int  # model-rate frames the codes start before the take (dropped when fitting)
    model_sample_rate: int
    path: Path | None = None
    clip_id: int | None = None
    rerolls: int = 0

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.report.first_beat_silent:
            flags.append("silent first beat")
        if self.report.limiter_db > 0.05:
            flags.append(f"peaks limited by {self.report.limiter_db:.1f} dB")
        if self.report.loudness_difference_lu < -1.0:
            flags.append(f"{-self.report.loudness_difference_lu:.1f} LU quieter than the source (peaks)")
        if self.rerolls:
            flags.append(f"re-rolled {self.rerolls}x")
        return flags


@dataclass
class Continuation:
    """The result of one "continue": its source, the text the model got, and the fitted takes."""

    source: Source
    options: ContinueOptions
    text: str
    takes: list[FittedTake]
    placed: dict[int, PlacedClip] = field(default_factory=dict)
    # The track its takes go to when none is named: a chain stays on the track of the take it continues.
    track_index: int | None = None

    @property
    def end_beats(self) -> float | None:
        """Where these takes end in the song (where "continue again" goes)."""
        if self.source.end_beats is None:
            return None
        return self.source.end_beats + self.options.bars * self.source.signature.quarter_notes_per_bar

    def take(self, index: int) -> FittedTake:
        if not 0 <= index < len(self.takes):
            raise InvalidParameterError(f"there is no take {index + 1}; this continuation has {len(self.takes)}")
        return self.takes[index]


@dataclass
class _Job:
    done: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    error: SegueError | None = None


class ContinueMyTrack:
    """The workflow over an engine, a DAW link and (for capture and live play) the loopback devices.

    `recorder` must be running (bridge.audio.capture.Recorder) for capture; `player` for live play;
    `audition`, if given, plays the first take while it is being generated (the producer's speakers).
    """

    def __init__(
        self,
        engine: EnginePort,
        link: DawLink | None = None,
        recorder: Recorder | None = None,
        player: Player | None = None,
        library: ClipLibrary | None = None,
        output_dir: Path | None = None,
        export_dir: Path | None = None,
        audition: Player | None = None,
        track_name: str = DEFAULT_TRACK_NAME,
    ) -> None:
        self.engine = engine
        self.link = link or NoDawLink()
        self.recorder = recorder
        self.player = player
        self.audition = audition
        self.library = library if library is not None else ClipLibrary()
        self._owns_library = library is None
        self.output_dir = output_dir
        self.placer = ClipPlacer(self.link, export_dir)
        self.track_name = track_name
        self.clock = DawClock(self.link.transport, recorder).start() if recorder is not None else None
        self.last_placed: tuple[Continuation, int] | None = None
        self._placed_tracks: dict[int, int] = {}  # library clip id -> the DAW track it was placed on
        self._jobs: dict[int, _Job] = {}
        self._on_progress: Callable[[float], None] | None = None
        self._auditioning: int | None = None
        self._last_progress: Progress | None = None
        self._preparer = Preparer(engine)  # the engine's preparation of the current source and text, if any
        self.on_prepared: Callable[[], None] | None = None  # called (engine thread) once a preparation is ready
        self._lock = threading.Lock()

    def close(self) -> None:
        if self.clock is not None:
            self.clock.close()
        if self._owns_library:
            self.library.close()

    # -- the engine's events (any thread) ----------------------------------------------------------

    def on_engine_event(self, event: EngineEvent) -> None:
        if isinstance(event, PromptPrepared):
            callback = self.on_prepared
            if self._preparer.finished(event.job_id, event.outcome) and callback is not None:
                try:
                    callback()
                except Exception:  # a closed window's callback must not end the engine's event thread
                    log.exception("on_prepared failed")
            return
        with self._lock:  # a job is registered under this lock right as it is submitted
            job = self._jobs.get(getattr(event, "job_id", -1))
        if job is None:
            return
        if isinstance(event, Progress):
            self._last_progress = event
            callback = self._on_progress
            if callback is not None:
                callback(event.fraction)
        elif isinstance(event, AudioChunk):
            self._audition_chunk(event)
        elif isinstance(event, JobFinished):
            job.result = event.result
            job.done.set()
        elif isinstance(event, JobFailed):
            job.error = SegueError(event.message)
            job.done.set()
        elif isinstance(event, JobCancelled):
            job.error = CancelledError("the continuation was cancelled")
            job.done.set()

    def cancel(self) -> None:
        """Stop the running generation (the blocked call raises CancelledError)."""
        with self._lock:
            running = [job_id for job_id, job in self._jobs.items() if not job.done.is_set()]
        for job_id in running:
            self.engine.cancel(job_id)

    @property
    def busy(self) -> bool:
        with self._lock:
            return any(not job.done.is_set() for job in self._jobs.values())

    # -- 1. source ---------------------------------------------------------------------------------

    def source_from_daw(self, bars: int = 4, end: str = "auto", timeout_seconds: float | None = None) -> Source:
        """The last `bars` bars before the loop end or the playhead: captured from the loopback when a
        recorder runs, else rendered by REAPER. Raises DawError when neither is possible."""
        if self.recorder is not None and self.clock is not None:
            return self.capture(bars, end, timeout_seconds)
        if isinstance(self.link, ReaperLink):
            return self.render(bars, end)
        raise DawError(
            f"cannot take audio from {self.link.display_name}: choose a loopback input "
            "(`segue devices --input NAME`) or drop an audio file"
        )

    def capture(self, bars: int = 4, end: str = "auto", timeout_seconds: float | None = None) -> Source:
        if self.recorder is None or self.clock is None:
            raise DawError("no loopback input is recording: choose one with `segue devices --input NAME`")
        if self.link.transport.snapshot().playing:
            self.clock.wait_for_run(FIRST_REPORT_SECONDS)  # a link just started has no report yet
        source = source_from_capture(self.recorder, self.clock, self.link.transport.snapshot(), bars, end, timeout_seconds)
        return dataclasses.replace(source, path=keep_capture(source))

    def render(self, bars: int = 4, end: str = "auto") -> Source:
        if not isinstance(self.link, ReaperLink):
            raise DawError(f"only REAPER renders audio for Segue; {self.link.display_name} is linked")
        return source_from_render(self.link, bars, end)

    def source_from_file(
        self, path: str | Path, bars: int = 4, bpm: float | None = None, signature: TimeSignature | None = None
    ) -> Source:
        """The last `bars` bars of a file ending on a bar line, at `bpm` or else the DAW's tempo."""
        snapshot = self.link.transport.snapshot()
        if bpm is None:
            try:
                bpm, daw_signature = session_tempo(snapshot)
            except DawError as error:
                raise InvalidParameterError(f"give the file's tempo, or link a DAW to take it from ({error})") from None
            signature = signature or daw_signature
        return source_from_file(path, bars, bpm, signature or TimeSignature())

    def prepare_source(self, source: Source, options: ContinueOptions) -> int | None:
        """Have the engine encode `source` and prefill its rows now, the text as `options` have it too
        (bridge/workflow/preparation.py), while the producer still writes the prompt: Continue then
        starts from them. Call it again as the words change; a newer source or text supersedes the one
        being prepared. Returns the preparation's id, or None when the engine cannot prepare (a remote
        one) or could not now; preparing is only ever a head start."""
        try:
            return self._preparer.prepare(self._continue_request(source, options))
        except SegueError as error:  # e.g. bars the model cannot hold, an engine shut down: Continue will say
            log.info("source not prepared: %s", error)
            return None

    def prepared_for(self, source: Source, options: ContinueOptions) -> bool:
        """Whether Continue with `options` would find its source and words prepared: only its steps left."""
        try:
            return self._preparer.ready_for(self._continue_request(source, options))
        except SegueError:
            return False

    def _continue_request(self, source: Source, options: ContinueOptions) -> GenerationRequest:
        """The first request Continue would submit for `source` with `options`."""
        options.check()
        return self._request(source, options, continuation_text(options.prompt, source.bpm, options.key),
                             options.takes, options.seed)

    def prepare_again(self, continuation: Continuation, take_index: int) -> int | None:
        """prepare_source for "continue again" from a take (just placed), where more may follow."""
        return self.prepare_source(self.take_as_source(continuation, take_index), continuation.options)

    # -- 2. describe -------------------------------------------------------------------------------

    @staticmethod
    def suggest(source: Source) -> Suggestions:
        return suggest(source.audio, source.sample_rate)

    # -- 3 and 4. generate and fit -------------------------------------------------------------------

    def continue_source(
        self,
        source: Source,
        options: ContinueOptions,
        on_progress: Callable[[float], None] | None = None,
        on_submitted: Callable[[int], None] | None = None,
    ) -> Continuation:
        """Generate the takes continuing `source`, fit them, re-roll silent starts, write them.

        `on_submitted(job_id)` is called once the engine has the job; `on_progress(fraction)` as it
        runs (on the engine's event thread).
        """
        options.check()
        check_bars(source.bars, source.bpm, source.signature)
        request = self._continue_request(source, options)
        text = request.prompt
        result = self._run(request, on_progress, on_submitted, audition=True)
        takes = [self._fit(source, options, result, take) for take in result.takes]
        if options.reroll_silent_start:
            takes = self._reroll(source, options, text, takes)
        # A chain stays on the track where the take it continues was placed.
        continuation = Continuation(source, options, text, takes, track_index=self._placed_tracks.get(source.clip_id))
        for take in takes:
            self._write(continuation, take, request)
        return continuation

    def continue_again(
        self,
        options: ContinueOptions,
        continuation: Continuation | None = None,
        take_index: int | None = None,
        on_progress: Callable[[float], None] | None = None,
        on_submitted: Callable[[int], None] | None = None,
    ) -> Continuation:
        """Continue from the end of a take (default: the last one placed), prompted with its codes."""
        if continuation is None or take_index is None:
            if self.last_placed is None:
                raise InvalidParameterError("place a take first: continue again goes on from the placed take")
            continuation, take_index = self.last_placed
        source = self.take_as_source(continuation, take_index)
        return self.continue_source(source, options, on_progress, on_submitted)

    @staticmethod
    def take_as_source(continuation: Continuation, take_index: int) -> Source:
        take = continuation.take(take_index)
        source = continuation.source
        prompt = None
        if take.codes is not None:
            take_frames = bars_to_samples(continuation.options.bars, source.bpm, source.signature, take.model_sample_rate)
            prompt = codes_prompt(take.codes, take.codes_lead_frames, take_frames, take.model_sample_rate)
        return Source(
            take.audio, take.sample_rate, source.bpm, source.signature, continuation.options.bars, "take",
            continuation.end_beats, take.path, take.clip_id, prompt,
        )

    def _request(
        self, source: Source, options: ContinueOptions, text: str, variations: int, seed: int | None
    ) -> GenerationRequest:
        lead = source.codes_prompt.lead_frames if source.codes_prompt is not None else 0
        frames = bars_to_samples(options.bars, source.bpm, source.signature, MUSICGEN_SAMPLE_RATE)
        audio = {} if source.codes_prompt is not None else {"audio": source.audio, "audio_sample_rate": source.sample_rate}
        if options.melody is not None:
            audio["melody"] = melody_with_lead_in(
                options.melody, options.melody_sample_rate, options.bars, source.bpm, source.signature,
                lead / MUSICGEN_SAMPLE_RATE,
            )
            audio["melody_sample_rate"] = options.melody_sample_rate
        return GenerationRequest(
            prompt=text,
            model=options.model,
            seconds=(frames + lead + EXTRA_MODEL_FRAMES) / MUSICGEN_SAMPLE_RATE,
            bpm=source.bpm,
            signature=str(source.signature),
            variations=variations,
            seed=seed,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            cfg=options.cfg,
            quality=options.quality,
            prompt_codes=None if source.codes_prompt is None else source.codes_prompt.codes,
            **audio,
        ).validate()

    def _run(self, request: GenerationRequest, on_progress, on_submitted=None, audition: bool = False) -> GenerationResult:
        job = _Job()
        self._preparer.before_submit(request)
        with self._lock:
            job_id = self.engine.submit(request)
            self._jobs[job_id] = job
            self._on_progress = on_progress
            self._auditioning = job_id if audition and self.audition is not None else None
        if on_submitted is not None:
            on_submitted(job_id)
        try:
            job.done.wait()
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)
            if self._auditioning == job_id:
                self._finish_audition(job.error is None)
        if job.error is not None:
            raise job.error
        # Codes chain only at MusicGen's rate; takes without codes (Stable Audio) chain from their audio.
        has_codes = any(take.codes is not None for take in job.result.takes)
        if has_codes and job.result.sample_rate != MUSICGEN_SAMPLE_RATE:
            raise SegueError(f"{job.result.model_id} makes {job.result.sample_rate} Hz audio; Segue expects MusicGen's 32 kHz")
        return job.result

    def _fit(self, source: Source, options: ContinueOptions, result: GenerationResult, take) -> FittedTake:
        lead = source.codes_prompt.lead_frames if source.codes_prompt is not None else 0
        audio, report = fit_take(
            take.audio, result.sample_rate, source.audio, source.sample_rate, options.bars, source.bpm,
            source.signature, lead_frames=lead,
        )
        return FittedTake(take.index, take.seed, audio, source.sample_rate, report, take.codes, lead, result.sample_rate)

    def _reroll(self, source: Source, options: ContinueOptions, text: str, takes: list[FittedTake]) -> list[FittedTake]:
        """Replace takes whose first beat is silent with new seeds, up to options.max_rerolls times."""
        for attempt in range(1, options.max_rerolls + 1):
            silent = [take for take in takes if take.report.first_beat_silent]
            if not silent:
                break
            result = self._run(self._request(source, options, text, len(silent), None), None)
            for old, new in zip(silent, result.takes, strict=True):
                fitted = self._fit(source, options, result, new)
                fitted.index, fitted.rerolls = old.index, attempt
                takes[old.index] = fitted
        return takes

    def _write(self, continuation: Continuation, take: FittedTake, request: GenerationRequest) -> None:
        source = continuation.source
        params = request.describe() | {
            "workflow": "continue-my-track",
            "take_index": take.index,
            "rerolls": take.rerolls,
            "source_kind": source.kind,
            "source_file": str(source.path) if source.path else None,
            "source_bars": source.bars,
            "source_end_beats": source.end_beats,
            "fit": dataclasses.asdict(take.report),
        }
        info = ClipInfo(
            prompt=continuation.text, model=continuation.options.model, seed=take.seed, params=params,
            parent_id=source.clip_id, bpm=source.bpm, signature=str(source.signature),
            bars=float(continuation.options.bars), tags=(TAG,),
        )
        clip = self.library.record(take.audio, take.sample_rate, info, out_dir=self.output_dir)
        take.path, take.clip_id = clip.path, clip.id

    # -- audition while generating -------------------------------------------------------------------

    def _audition_chunk(self, event: AudioChunk) -> None:
        if event.job_id != self._auditioning or self.audition is None:
            return
        try:
            if event.start_frame == 0:
                self.audition.begin(event.sample_rate, start_after_seconds=self._audition_threshold_seconds())
            self.audition.feed(event.audio[0], timeout_seconds=1.0)
        except SegueError as error:
            log.info("audition stopped: %s", error)
            self._auditioning = None

    def _audition_threshold_seconds(self) -> float:
        """Audio to buffer before the audition starts so that, at the speed measured so far, it never
        runs dry (bridge.engine.schedule)."""
        progress = self._last_progress
        if progress is None or progress.job_id != self._auditioning or not progress.eta_seconds:
            return FALLBACK_AUDITION_BUFFER_SECONDS
        remaining = progress.steps_total - progress.steps_done
        return start_threshold_seconds(
            0.0, remaining, remaining / progress.eta_seconds, CODEC_FRAMES_PER_SECOND,
            stream_lag_seconds(CODEC_FRAMES_PER_SECOND),
        )

    def _finish_audition(self, completed: bool) -> None:
        self._auditioning = None
        try:
            if completed:
                self.audition.finish()
            else:
                self.audition.stop()
        except SegueError as error:
            log.info("audition stopped: %s", error)

    # -- 5. place ----------------------------------------------------------------------------------

    def place(self, continuation: Continuation, take_index: int, track_index: int | None = None) -> PlacedClip:
        """Put the take where its source ends (through the DAW, else the export folder or drag and drop),
        on `track_index` (0-based), else the track of the take it continues, else a new track."""
        take = continuation.take(take_index)
        if track_index is None:
            track_index = continuation.track_index
        placed = place_take(self.placer, take.path, continuation.source.end_beats, track_index, self.track_name)
        continuation.placed[take_index] = placed
        self.last_placed = (continuation, take_index)
        if placed.track_index is not None:
            self._placed_tracks[take.clip_id] = placed.track_index
        return placed

    def play(self, continuation: Continuation, take_index: int) -> LivePlay:
        """Play the take into the loopback output, starting on the DAW's next bar line."""
        if self.player is None or self.recorder is None or self.clock is None:
            raise DawError("live play needs the loopback input and output: choose them with `segue devices`")
        take = continuation.take(take_index)
        return play_on_next_bar(
            self.player, self.recorder, self.clock, continuation.source.signature, take.audio, take.sample_rate
        )
