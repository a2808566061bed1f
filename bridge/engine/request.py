"""A generation request: everything needed to reproduce a clip, validated before any work starts."""

from dataclasses import asdict, dataclass, field

import numpy as np

from bridge.errors import InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples, bars_to_seconds, check_bpm

DEFAULT_MODEL = "facebook/musicgen-small"
MAX_SECONDS = 300.0
MAX_VARIATIONS = 8
MAX_PROMPT_CHARS = 2000
QUALITY_MODES = ("auto", "exact", "fast")


@dataclass
class GenerationRequest:
    """Text prompt plus optional audio to continue.

    Length is given either in `seconds` or in `bars` at `bpm` (quarter notes per minute) and
    `signature`. The audio prompt is a file (`audio_path`), an array (`audio`, shape (frames,) or
    (frames, channels), at `audio_sample_rate`) or MusicGen codes of an earlier take (`prompt_codes`,
    shape (codebooks, steps)); it is trimmed to its last `prompt_seconds` or `prompt_bars`.

    A variation restyles a whole clip (`init_audio_path`): `strength` 0-1 is how far from it the
    take may go (1: nothing of it is kept). Not every model family can make variations: the family
    says so when the request is validated (bridge.engine.families).
    """

    prompt: str = ""
    model: str = DEFAULT_MODEL
    seconds: float | None = None
    bars: float | None = None
    bpm: float | None = None
    signature: str = "4/4"
    variations: int = 1
    seed: int | None = None
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg: float = 3.0
    greedy: bool = False
    quality: str = "auto"
    audio_path: str | None = None
    audio: np.ndarray | None = field(default=None, repr=False)
    audio_sample_rate: int | None = None
    prompt_codes: np.ndarray | None = field(default=None, repr=False)
    prompt_seconds: float | None = None
    prompt_bars: float | None = None
    # A melody to follow (models that take one, e.g. MusicGen-Melody): a file or an array, like the
    # audio prompt; it starts at the clip's first bar line and is cut or looped to the clip's bars.
    melody_path: str | None = None
    melody: np.ndarray | None = field(default=None, repr=False)
    melody_sample_rate: int | None = None
    init_audio_path: str | None = None
    strength: float = 0.5

    @property
    def time_signature(self) -> TimeSignature:
        return TimeSignature.parse(self.signature)

    @property
    def has_melody(self) -> bool:
        return self.melody_path is not None or self.melody is not None

    @property
    def is_continuation(self) -> bool:
        return self.audio_path is not None or self.audio is not None or self.prompt_codes is not None

    def duration_seconds(self) -> float:
        """Length of the new material in seconds."""
        if self.bars is not None:
            if self.bpm is None:
                raise InvalidParameterError("a length in bars needs a tempo (--bpm)")
            return bars_to_seconds(self.bars, self.bpm, self.time_signature)
        return float(self.seconds if self.seconds is not None else 8.0)

    def target_samples(self, sample_rate: int) -> int:
        """Exact length of the new material in samples at `sample_rate` (bars rounded once, at the end)."""
        if self.bars is not None:
            return bars_to_samples(self.bars, self.bpm, self.time_signature, sample_rate)
        return round(self.duration_seconds() * sample_rate)

    def prompt_window_seconds(self) -> float | None:
        """How much of the end of the audio prompt to keep, or None for all of it."""
        if self.prompt_bars is not None:
            if self.bpm is None:
                raise InvalidParameterError("a prompt length in bars needs a tempo (--bpm)")
            return bars_to_seconds(self.prompt_bars, self.bpm, self.time_signature)
        return self.prompt_seconds

    def validate(self) -> "GenerationRequest":
        """Raise InvalidParameterError naming the first impossible value; return self."""
        if not isinstance(self.prompt, str) or len(self.prompt) > MAX_PROMPT_CHARS:
            raise InvalidParameterError(f"the prompt must be text of at most {MAX_PROMPT_CHARS} characters")
        if self.seconds is not None and self.bars is not None:
            raise InvalidParameterError("give the length in seconds or in bars, not both")
        if self.bpm is not None:
            check_bpm(self.bpm)
        self.time_signature  # noqa: B018 - parses and validates
        seconds = self.duration_seconds()
        if not 0.0 < seconds <= MAX_SECONDS:
            raise InvalidParameterError(
                f"the length must be more than 0 and at most {MAX_SECONDS:g} seconds, got {seconds:g} s"
            )
        if not 1 <= self.variations <= MAX_VARIATIONS:
            raise InvalidParameterError(f"variations must be 1-{MAX_VARIATIONS}, got {self.variations}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidParameterError(f"the seed must be a non-negative integer, got {self.seed}")
        if not 0.0 < self.temperature <= 10.0:
            raise InvalidParameterError(f"temperature must be above 0 and at most 10, got {self.temperature:g}")
        if self.top_k < 0:
            raise InvalidParameterError(f"top-k must be 0 (off) or more, got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise InvalidParameterError(f"top-p must be between 0 (off) and 1, got {self.top_p:g}")
        if not 0.0 <= self.cfg <= 30.0:
            raise InvalidParameterError(f"guidance must be between 0 and 30, got {self.cfg:g}")
        if self.quality not in QUALITY_MODES:
            raise InvalidParameterError(f"quality must be one of {', '.join(QUALITY_MODES)}, got {self.quality!r}")
        window = self.prompt_window_seconds()
        if window is not None and not 0.0 < window <= 30.0:
            raise InvalidParameterError(f"the audio prompt must be more than 0 and at most 30 s, got {window:g} s")
        if self.audio is not None and self.audio_sample_rate is None:
            raise InvalidParameterError("audio given as an array needs its sample rate")
        if self.melody_path is not None and self.melody is not None:
            raise InvalidParameterError("give the melody as a file or as audio, not both")
        if self.melody_path is not None and (not isinstance(self.melody_path, str) or not self.melody_path.strip()):
            raise InvalidParameterError("the melody file name is empty")
        if self.melody is not None and not (isinstance(self.melody_sample_rate, int) and self.melody_sample_rate > 0):
            raise InvalidParameterError("a melody given as audio needs its sample rate")
        if not 0.0 < self.strength <= 1.0:
            raise InvalidParameterError(f"the strength must be above 0 and at most 1, got {self.strength:g}")
        if self.init_audio_path is not None and self.is_continuation:
            raise InvalidParameterError("a variation restyles one clip; it cannot also continue another")
        from bridge.engine.families import check_request  # families import this module

        check_request(self)
        return self

    def describe(self) -> dict:
        """JSON-ready parameters for sidecars and the library (arrays left out)."""
        data = asdict(self)
        data.pop("audio")
        data.pop("prompt_codes")
        data.pop("melody")
        return data
