"""The audio prompt's usable end, shared by every family that continues audio."""

import numpy as np

from bridge.errors import AudioFileError


def last_whole_frames(
    audio: np.ndarray, sample_rate: int, window_seconds: float | None, samples_per_frame: int
) -> np.ndarray:
    """The last `window_seconds` of `audio` (all of it for None), cut to whole model frames by dropping
    its oldest samples, so new material starts exactly where the producer's audio ends.

    Raises AudioFileError when not even one frame is left.
    """
    if window_seconds is not None:
        audio = audio[-round(window_seconds * sample_rate) :]
    usable = (audio.shape[0] // samples_per_frame) * samples_per_frame
    if usable == 0:
        raise AudioFileError(f"the audio to continue is too short (under {1000 * samples_per_frame // sample_rate} ms)")
    return np.ascontiguousarray(audio[-usable:])
