"""The arguments of an inbound /segue/* message, checked before anything runs.

Every refusal is one line that names the usage; echoed input is shortened, so an error reply never
grows with a hostile message.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile

from bridge.errors import AudioFileError, InvalidParameterError

MAX_PATH_CHARS = 4096
# Longest audio file /segue/continue accepts: the engine reads it whole before trimming.
MAX_CONTINUE_SOURCE_SECONDS = 20 * 60.0


@dataclass(frozen=True)
class Command:
    """An inbound address: its argument types (s text, f number, i whole number) and its handler."""

    types: str
    usage: str
    handler: Callable[..., None]


def check_arguments(args: tuple, command: Command) -> list:
    """The arguments converted to the command's types, or InvalidParameterError naming the usage."""
    if len(args) != len(command.types):
        raise InvalidParameterError(
            f"expected {len(command.types)} argument(s), got {len(args)}; usage: {command.usage}"
        )
    converted = []
    for position, (kind, value) in enumerate(zip(command.types, args, strict=True), start=1):
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if kind == "s" and isinstance(value, str):
            converted.append(value)
        elif kind == "f" and number is not None and math.isfinite(number):
            converted.append(float(number))
        elif kind == "i" and number is not None and math.isfinite(number) and float(number).is_integer():
            converted.append(int(number))
        else:
            wanted = {"s": "text", "f": "a number", "i": "a whole number"}[kind]
            raise InvalidParameterError(
                f"argument {position} must be {wanted}, got {shorten(repr(value))}; usage: {command.usage}"
            )
    return converted


def check_audio_file(audio_path: str) -> tuple[Path, float]:
    """The file to continue, resolved, and its length in seconds; AudioFileError says what is wrong."""
    if not audio_path or len(audio_path) > MAX_PATH_CHARS:
        raise AudioFileError(f"the audio path must be 1-{MAX_PATH_CHARS} characters")
    path = Path(audio_path)
    if not path.is_absolute():
        raise AudioFileError(f"give the audio file as an absolute path, not {shorten(audio_path)}")
    if not path.is_file():
        raise AudioFileError(f"no audio file at {shorten(audio_path)}")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError):
        raise AudioFileError(f"{shorten(path.name)} is not an audio file Segue can read") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioFileError(f"{shorten(path.name)} contains no audio")
    seconds = info.frames / info.samplerate
    if seconds > MAX_CONTINUE_SOURCE_SECONDS:
        raise AudioFileError(
            f"{shorten(path.name)} is {seconds / 60:.0f} min long; give Segue at most "
            f"{MAX_CONTINUE_SOURCE_SECONDS / 60:.0f} min to continue"
        )
    return path.resolve(), seconds


def shorten(text: str, limit: int = 80) -> str:
    """Keep echoed input short: an error reply never grows with a hostile message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
