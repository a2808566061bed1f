"""Text to a loop: a take fitted to exactly N bars whose end runs into its start without a click.

The length comes from the same fit step Continue my track uses (bridge.audio.dsp.fit_to_bars: the
sample count every part of Segue computes for N bars). The loop point: the material the model made
just past the last bar line is what naturally follows the loop's end, so it is crossfaded into the
loop's first milliseconds; when a take has nothing past its last bar, the start fades in from the
end played backwards instead (bridge.workflow.fit.seam_crossfade). Either way the first sample
continues the last one.
"""

import dataclasses

import numpy as np

from bridge.audio.dsp import crossfade, fit_to_bars
from bridge.audio.io import as_frames
from bridge.engine.events import GenerationResult
from bridge.engine.request import GenerationRequest
from bridge.errors import InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples, bars_to_seconds
from bridge.workflow.fit import seam_crossfade

LOOP_CROSSFADE_SECONDS = 0.02
# Generated past the last bar line so the loop point has real material to fade from.
LOOP_OVERHANG_SECONDS = 2 * LOOP_CROSSFADE_SECONDS


def make_loop(audio: np.ndarray, sample_rate: int, bars: int, bpm: float, signature: TimeSignature) -> np.ndarray:
    """`audio` as a loop of exactly `bars` bars at `bpm` in `signature`, seamless at its loop point."""
    audio = as_frames(audio)
    frames = bars_to_samples(bars, bpm, signature, sample_rate)
    fade = min(round(LOOP_CROSSFADE_SECONDS * sample_rate), frames // 2)
    loop = fit_to_bars(audio, bars, bpm, signature, sample_rate)
    if fade == 0:
        return loop
    if audio.shape[0] >= frames + fade:
        # The overhang fades out over the loop's first `fade` frames as they fade in.
        return np.concatenate([crossfade(audio[frames : frames + fade], loop[:fade], fade), loop[fade:]])
    return seam_crossfade(loop, loop, fade)


def loop_seam_jump(loop: np.ndarray) -> float:
    """How far the loop's first sample is from its last (what a click at the loop point is made of)."""
    loop = as_frames(loop)
    return float(np.max(np.abs(loop[0] - loop[-1])))


def loop_request(request: GenerationRequest) -> GenerationRequest:
    """The request to generate for a loop of `request.bars` whole bars: a little past the last bar line."""
    if request.bars is None or request.bpm is None or request.bars != int(request.bars) or request.bars < 1:
        raise InvalidParameterError("a loop needs a whole number of bars and a tempo (--bars N --bpm BPM)")
    seconds = bars_to_seconds(request.bars, request.bpm, request.time_signature) + LOOP_OVERHANG_SECONDS
    return dataclasses.replace(request, seconds=seconds, bars=None).validate()


def loop_takes(result: GenerationResult, bars: int, bpm: float, signature: TimeSignature) -> None:
    """Turn every take of `result` into a loop of `bars` bars, in place."""
    for take in result.takes:
        take.audio = make_loop(take.audio, result.sample_rate, bars, bpm, signature)
