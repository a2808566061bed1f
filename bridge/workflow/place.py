"""Step 5, place: the chosen take into the DAW at the bar where its source ends, or live on the next bar.

Placing goes through the DAW link's routes and their fallbacks (bridge.daw.placement): Live's
Arrangement at the source's end beat, REAPER's insert script at that beat (the script converts it
with the project's tempo map), else the export folder, else the file for drag and drop.

Playing live sends the take into the loopback output so the DAW can record or monitor it: its first
frame is scheduled on the player's clock so that it reaches the recording at the same moment as
the DAW's own sound of the next bar line (the way a musician plays in time with what they hear),
using the DawClock that follows the transport and the measured round trip.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.audio.capture import Recorder
from bridge.audio.playback import Player
from bridge.audio.stream_clock import stream_time_offset
from bridge.daw.placement import DEFAULT_TRACK_NAME, ClipPlacer, ClipTarget, PlacedClip
from bridge.errors import DawError
from bridge.musical_time import TimeSignature
from bridge.workflow.daw_clock import DawClock

# The next bar line must be at least this far ahead for the player to be sure to catch it.
SCHEDULE_AHEAD_SECONDS = 0.3


@dataclass(frozen=True)
class LivePlay:
    """A take scheduled into the loopback: it starts on song beat `start_beats` (a bar line)."""

    start_beats: float
    recording_frame: float  # where its first frame reaches the recording
    player_time: float  # when the player hands its first frame to the device (player's clock)


def place_take(
    placer: ClipPlacer,
    path: Path,
    position_beats: float | None,
    track_index: int | None = None,
    track_name: str = DEFAULT_TRACK_NAME,
) -> PlacedClip:
    """Put the take's file into the project at `position_beats` (None: Live's Session view, REAPER's
    edit cursor), through the best route that works; the result says which and where."""
    return placer.place(ClipTarget(Path(path), track_index, track_name, position_beats))


def play_on_next_bar(
    player: Player,
    recorder: Recorder,
    clock: DawClock,
    signature: TimeSignature,
    audio: np.ndarray,
    sample_rate: int,
) -> LivePlay:
    """Play `audio` into the loopback starting exactly on the next bar line the DAW reaches.

    Raises DawError when the DAW is not playing (there is no next bar line to aim at).
    """
    if clock.current_run() is None:
        raise DawError("the DAW is not playing: start playback, then play the take on the next bar")
    rate = recorder.sample_rate
    bar_beats = signature.quarter_notes_per_bar
    # Recording frames are stamped as they arrive; Segue's output reaches the recording latency_frames
    # after the player hands it over, so a frame handed over now arrives at now + latency.
    earliest = recorder.frames_recorded + recorder.latency_frames + SCHEDULE_AHEAD_SECONDS * rate
    bar = math.floor(clock.beat_at_frame(earliest) / bar_beats + 1e-9 + 1) * bar_beats
    frame = clock.frame_of_beat(bar)
    # The two streams' clocks may differ by a constant (JACK starts each at zero).
    offset = stream_time_offset(recorder.stream_time, player.stream_time)
    player_time = recorder.time_at_frame(frame - recorder.latency_frames) - offset
    player.play(audio, sample_rate, start_time=player_time)
    return LivePlay(bar, frame, player_time)
