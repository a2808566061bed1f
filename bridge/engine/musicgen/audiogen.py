"""AudioGen: sound effects from text, run by the MusicGen engine.

AudioGen (audiocraft) is MusicGen's architecture trained on sound: the same delayed-codebook
transformer with T5 cross-attention, over a 16 kHz EnCodec (320 samples per frame, 4 codebooks).
Once converted (bridge/models/audiocraft_convert.py) it is a `MusicgenForConditionalGeneration`
folder, and Segue's sampling loop, int8 decoder and streaming codec run it unchanged. What differs
is how far it can see: it was trained on 10 s segments (audiocraft `AudioGen.max_duration`), and
extends past that by sliding 2 s at a time (`extend_stride`), so each window keeps 8 s of context.

A model folder says it is AudioGen with a small marker file written at conversion (and by the
random `tiny-audiogen` builder).
"""

import json
from dataclasses import dataclass
from pathlib import Path

AUDIOGEN_MARKER = "segue_audiogen.json"

# audiocraft/models/audiogen.py: max_duration from the 10 s training segments, extend_stride=2.
AUDIOGEN_WINDOW_SECONDS = 10.0
AUDIOGEN_STRIDE_SECONDS = 2.0


@dataclass(frozen=True)
class Windows:
    seconds: float
    context_seconds: float


def write_audiogen_marker(folder: Path) -> None:
    marker = {
        "family": "audiogen",
        "window_seconds": AUDIOGEN_WINDOW_SECONDS,
        "window_context_seconds": AUDIOGEN_WINDOW_SECONDS - AUDIOGEN_STRIDE_SECONDS,
    }
    (Path(folder) / AUDIOGEN_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def is_audiogen_folder(folder: Path) -> bool:
    return (Path(folder) / AUDIOGEN_MARKER).is_file()


def windows_for(folder: Path | str) -> Windows | None:
    """AudioGen's generation window if `folder` holds an AudioGen model; None for MusicGen's own."""
    try:
        marker = json.loads((Path(folder) / AUDIOGEN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    seconds = float(marker.get("window_seconds", AUDIOGEN_WINDOW_SECONDS))
    context = float(marker.get("window_context_seconds", AUDIOGEN_WINDOW_SECONDS - AUDIOGEN_STRIDE_SECONDS))
    if not 0.0 <= context < seconds:  # a hand-edited marker: fall back to audiocraft's stride
        context = seconds - min(AUDIOGEN_STRIDE_SECONDS, seconds / 2)
    return Windows(seconds, context)
