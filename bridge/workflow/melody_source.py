"""The melody Continue my track follows (melody models): an audio file, or the DAW's last bars.

The DAW's bars are taken as Continue my track takes its source (loopback capture or REAPER's
render of the bars before the loop end or the playhead). When the source itself came from the DAW
that way, the melody is the source: the continuation keeps following the chords of the bars it
continues, and nothing is captured or rendered twice.
"""

import dataclasses
from pathlib import Path

from bridge.engine.catalog import known_to_take_no_melody, no_melody_message
from bridge.engine.melody_timeline import read_melody_file
from bridge.errors import InvalidParameterError
from bridge.workflow.session import ContinueMyTrack, ContinueOptions
from bridge.workflow.source import END_CHOICES, Source

# How the DAW's bars are taken: "auto" as the source would be (capture with a loopback, else render).
DAW_MELODY_CHOICES = ("auto", "capture", "render")


def check_takes_melody(model: str) -> None:
    """InvalidParameterError for a catalogued model that follows no melody (before anything is taken)."""
    if known_to_take_no_melody(model):
        raise InvalidParameterError(no_melody_message(model))


def melody_from_daw(session: ContinueMyTrack, source: Source, how: str = "auto", end: str = "auto") -> Source:
    """The DAW's last `source.bars` bars as a melody: `source` itself when it was taken from the DAW
    the same way, else captured or rendered now (DawError / CaptureError when the DAW cannot)."""
    if how not in DAW_MELODY_CHOICES or end not in END_CHOICES:
        raise InvalidParameterError(f"a melody from the DAW is captured or rendered, not {how!r}")
    if source.kind in ("capture", "render") and how in ("auto", source.kind):
        return source
    take = {"auto": session.source_from_daw, "capture": session.capture, "render": session.render}[how]
    return take(source.bars, end)


def following(options: ContinueOptions, melody: Source | str | Path) -> ContinueOptions:
    """`options` that also follow `melody`: a source's audio, or an audio file (AudioFileError names it)."""
    if isinstance(melody, Source):
        audio, rate = melody.audio, melody.sample_rate
    else:
        audio, rate = read_melody_file(melody)
    return dataclasses.replace(options, melody=audio, melody_sample_rate=rate)
