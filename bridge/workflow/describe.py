"""Step 2, describe: the text that steers a continuation, never empty.

MusicGen's guidance compares the model with and without the text; an empty text leaves it nothing to
steer by. So the producer's words are always joined by the tempo, and by the key when the producer
accepted the estimate of the source (bridge.audio.analysis offers it; Segue never adds it silently).
"""

import re
from dataclasses import dataclass

import numpy as np

from bridge.audio.analysis import KeyEstimate, TempoEstimate, estimate_key, estimate_tempo
from bridge.errors import InvalidParameterError

# What the model is told when the producer typed nothing: the tempo and key still follow.
DEFAULT_DESCRIPTION = "instrumental music continuing the same groove"
# Estimates below these confidences are not worth offering.
MIN_KEY_CONFIDENCE = 0.5
MIN_TEMPO_CONFIDENCE = 0.2

_MENTIONS_TEMPO = re.compile(r"\b\d{2,3}(\.\d+)?\s*bpm\b", re.IGNORECASE)
_MENTIONS_KEY = re.compile(r"\b[A-G](#|b|♯|♭)?\s*(major|minor|maj|min)\b", re.IGNORECASE)
_KEY = re.compile(r"([A-G](#|b)?) (major|minor)")


@dataclass(frozen=True)
class Suggestions:
    """Estimates of the source the producer may accept; None when the source gives no clear answer."""

    key: KeyEstimate | None
    tempo: TempoEstimate | None

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else str(self.key)


def suggest(audio: np.ndarray, sample_rate: int) -> Suggestions:
    """The source's key and tempo estimates, each dropped when its confidence is low."""
    key = estimate_key(audio, sample_rate)
    tempo = estimate_tempo(audio, sample_rate)
    return Suggestions(
        key=key if key is not None and key.confidence >= MIN_KEY_CONFIDENCE else None,
        tempo=tempo if tempo is not None and tempo.confidence >= MIN_TEMPO_CONFIDENCE else None,
    )


def check_key(key: str) -> str:
    """'A minor', 'Eb major', ... as estimate_key prints them; InvalidParameterError otherwise."""
    text = " ".join(key.split())
    if not _KEY.fullmatch(text):
        raise InvalidParameterError(f"a key looks like 'A minor' or 'Eb major', got {key!r}")
    return text


def continuation_text(prompt: str, bpm: float, key: str | None = None) -> str:
    """The producer's prompt (or a neutral description) plus the tempo and the accepted key.

    A tempo or key the producer already wrote is not repeated.
    """
    words = " ".join(prompt.split()) or DEFAULT_DESCRIPTION
    parts = [words]
    if not _MENTIONS_TEMPO.search(words):
        parts.append(f"{bpm:.0f} bpm")
    if key is not None and not _MENTIONS_KEY.search(words):
        parts.append(check_key(key))
    return ", ".join(parts)
