"""When to start playing a clip that is still being generated, so playback never runs dry.

Audio is generated at `r` seconds of audio per second (steps/s over the 50 steps of one second).
At r >= 1 playback can start with the first chunk. Below real time, playback that starts with `b`
seconds buffered plays on while generation adds r seconds per second; it runs dry first at the
very end of the clip, and it does not if b >= (1 - r) x (the clip's whole length). Chunks arrive
in bursts, behind the generator by the streaming decoder's hold-back and chunk size (the lag), so
the lag is added, and the measured speed is divided by a safety factor against slow-downs.
"""

MAX_CHUNK_FRAMES = 25  # StreamingDecoder's default largest chunk
SAFETY = 1.25


def stream_lag_seconds(frame_rate: int, codebook_delay_steps: int = 3) -> float:
    """How far emitted audio trails the generator at most: delay pattern, hold-back, one chunk."""
    # Imported here: the codec needs torch, and the parents of an engine process (CLI, panel) never load it.
    from bridge.engine.musicgen.codec import HOLDBACK_FRAMES

    return (codebook_delay_steps + HOLDBACK_FRAMES + MAX_CHUNK_FRAMES) / frame_rate


def start_threshold_seconds(
    buffered_seconds: float,
    steps_remaining: int,
    steps_per_second: float,
    frame_rate: int,
    lag_seconds: float,
    safety: float = SAFETY,
) -> float:
    """Seconds of audio that must be buffered before playback starts, counting `buffered_seconds`.

    `steps_per_second` is the speed measured so far; `steps_remaining` the decoder steps still to
    run (one per codec frame). Returns at most the whole clip (then playback waits for the end).
    """
    clip_seconds = buffered_seconds + steps_remaining / frame_rate
    if steps_remaining <= 0:
        return clip_seconds
    realtime = steps_per_second / safety / frame_rate
    if realtime >= 1.0:
        return min(clip_seconds, lag_seconds)
    return min(clip_seconds, max(0.0, 1.0 - realtime) * clip_seconds + lag_seconds)
