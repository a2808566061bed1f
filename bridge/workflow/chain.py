"""Step 6, chain: "continue again" from the end of a placed take, prompted with its own codes.

Re-encoding a take's audio would add a second round of codec loss at every link of a chain; its
MusicGen codes (Take.codes) are the exact tokens the model made, so the next take is prompted with
those. The engine starts new material where the prompt codes end, and codes come in whole codec
frames (640 samples at 32 kHz) while a take ends on a bar line: so the prompt stops at the last
whole frame inside the take, and the first `lead_frames` of the new material, which overlap the end
of the take, are dropped when fitting (bridge.workflow.fit.fit_take).
"""

from dataclasses import dataclass

import numpy as np

from bridge.errors import InvalidParameterError

# Every MusicGen checkpoint decodes with the 32 kHz EnCodec at 50 codec frames per second.
MUSICGEN_SAMPLE_RATE = 32000
CODEC_FRAMES_PER_SECOND = 50
# The engine's window is 30 s; a prompt must leave room in it for new material.
MAX_PROMPT_SECONDS = 29.0


@dataclass(frozen=True)
class CodesPrompt:
    """Codes to prompt the next take with, and how many model-rate frames of its start to drop."""

    codes: np.ndarray  # (codebooks, frames)
    lead_frames: int


def samples_per_codec_frame(model_sample_rate: int) -> int:
    return model_sample_rate // CODEC_FRAMES_PER_SECOND


def codes_prompt(
    codes: np.ndarray,
    codes_lead_frames: int,
    take_frames: int,
    model_sample_rate: int,
    max_seconds: float = MAX_PROMPT_SECONDS,
) -> CodesPrompt:
    """The prompt that continues a take from its exact end.

    `codes` are the take's codes, whose first frame starts `codes_lead_frames` model-rate frames
    before the take itself (the lead its own fitting dropped); `take_frames` is the take's length at
    the model rate. Raises InvalidParameterError when the codes do not reach the end of the take or
    the take is shorter than one codec frame.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise InvalidParameterError(f"take codes must have shape (codebooks, frames), got {codes.shape}")
    per_frame = samples_per_codec_frame(model_sample_rate)
    end = codes_lead_frames + take_frames
    whole_frames = end // per_frame
    if whole_frames < 1:
        raise InvalidParameterError("the take is too short to continue from its codes (under one codec frame)")
    if codes.shape[1] < whole_frames:
        raise InvalidParameterError(
            f"the take's codes stop before its end ({codes.shape[1]} of {whole_frames} codec frames)"
        )
    first = max(0, whole_frames - round(max_seconds * CODEC_FRAMES_PER_SECOND))
    return CodesPrompt(np.ascontiguousarray(codes[:, first:whole_frames]), end - whole_frames * per_frame)
