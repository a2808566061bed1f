"""The text a Stable Audio model gets: the producer's words, then the tempo as the models read it.

Stable Audio was trained on descriptions written as comma-separated tags ending with the tempo,
"House music ... with all your friends 124 BPM" (Stability's model cards for Stable Audio 3 Small
and Stable Audio Open Small; stableaudio.com's prompt guide: genre, instruments, mood, then BPM).
The key goes in as the producer wrote it ("A minor"), before the tempo. A tempo already in the
words is kept as written, only spelt "BPM" the way the training text spells it.
"""

import re

_TEMPO = re.compile(r"\b(\d{2,3}(?:\.\d+)?)\s*bpm\b", re.IGNORECASE)


def stable_audio_prompt(words: str, bpm: float | None = None) -> str:
    """`words` tidied, with "<bpm> BPM" appended when a tempo is known and not already written."""
    text = _TEMPO.sub(lambda match: f"{match.group(1)} BPM", " ".join(words.split()))
    if bpm is not None and not _TEMPO.search(text):
        text = f"{text}, {bpm:g} BPM" if text else f"{bpm:g} BPM"
    return text


def stable_audio_open_prompt(words: str, bpm: float | None = None) -> str:
    """Stable Audio Open's convention: the tempo leads ("128 BPM tech house drum loop").

    Its model card's example prompt (huggingface.co/stabilityai/stable-audio-open-1.0, "Using with
    stable-audio-tools"), and the Freesound loop descriptions it was trained on, put the tempo first.
    """
    text = _TEMPO.sub(lambda match: f"{match.group(1)} BPM", " ".join(words.split()))
    if bpm is not None and not _TEMPO.search(text):
        text = f"{bpm:g} BPM {text}".rstrip()
    return text
