"""Where a steady-state decoder step's time goes, for bench/engine_speed.py. (A benchmark, not a test.)

One generation runs with a stopwatch around each part of a step:
- `linears`: the decoder layers' matmuls (fused q/k/v, self-attention out, cross-attention q and
  out, fc1, fc2): the weights' bytes, the part a faster kernel or less memory traffic can shrink;
  with the LayerNorm, GELU and residual sum each runs with (fused_step.linear_around: in the
  native-int8 call, or as PyTorch ops around it), so `norms` is 0 where that exists;
- `attention`: self-attention (appending to the key/value cache, attending over it) and the
  guided rows' cross-attention to the text;
- `norms`: the layer norms (three per layer and the final one);
- `heads`: the four codebook heads (one matmul; with the final norm where linear_around exists);
  `embeddings`: the four codebooks' embeddings summed;
- `decoder_other`: the rest of the decoder pass (GELU, residual adds, reshapes, Python);
- `sampling`: guidance and top-k sampling; `delay_pattern`: laying the codes out and back;
- `streaming_decode`: EnCodec turning new frames into audio chunks (in bursts: every chunk), as far
  as the step waits for it; `streaming_decode_beside`: the chunks' time on their own thread (not in
  the step's time, but sharing its cores);
- `loop_other`: the rest of a step (progress, cancellation checks, Python).
All in ms per step, averaged over the steps after the first 10% (the prefill and warm-up left out).
A timed part called inside another (a linear inside the heads' call) counts for the outer one only.
The stopwatch adds ~0.3 us per timed call (~300 calls per step).
"""

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DECODER_PARTS = ("linears", "attention", "norms", "heads", "embeddings")
LOOP_PARTS = ("sampling", "delay_pattern", "streaming_decode")
CHUNK_THREAD = "segue-stream-chunk"  # bridge/engine/musicgen/codec.py's BackgroundStream
LAYER_LINEARS = ("qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2")
LAYER_NORMS = ("self_norm", "cross_norm", "ffn_norm")


class Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inside = threading.local()  # a timed call under way on this thread

    def wrap(self, part: str, run: Callable, holds_parts: bool = False) -> Callable:
        """`run` timed as `part`; `holds_parts`: the parts timed inside it count too (the whole decoder pass)."""

        def timed(*args, **kwargs):
            if getattr(self._inside, "timing", False):
                return run(*args, **kwargs)
            self._inside.timing = not holds_parts
            started = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started
                self._inside.timing = False

        return timed


def chunk_watch(watch: Stopwatch, update: Callable) -> Callable:
    """Times StreamingDecoder.update: in the step when it runs there, else as `streaming_decode_beside`."""
    in_step, beside = watch.wrap("streaming_decode", update), watch.wrap("streaming_decode_beside", update)

    def timed(stream, codes):
        return (beside if threading.current_thread().name == CHUNK_THREAD else in_step)(stream, codes)

    return timed


@contextmanager
def _replaced(patches: list[tuple[object, str, object]]) -> Iterator[None]:
    """Set each (owner, attribute, value) for the block, then put the originals back."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(originals):
            setattr(owner, name, value)


def step_breakdown_ms(generator, request) -> dict[str, float]:
    """Run `request` on `generator` (a MusicGenerator) with every part of a step timed; ms per step."""
    from bridge.engine.musicgen import codec, fast_decoder, sampling
    from bridge.engine.musicgen.codec import StreamingDecoder

    decoder, _ = generator.decoder_for(request.quality)
    watch = Stopwatch()
    patches: list[tuple[object, str, object]] = []
    if hasattr(fast_decoder, "linear_around"):  # the layers' linears are not replaced: that would undo the fusing
        patches += [(fast_decoder, "linear_around", watch.wrap("linears", fast_decoder.linear_around)),
                    (decoder, "logits", watch.wrap("heads", decoder.logits))]
    else:  # an older Segue (--baseline)
        for layer in decoder.layers:
            patches += [(layer, name, watch.wrap("linears", getattr(layer, name)))
                        for name in LAYER_LINEARS if getattr(layer, name) is not None]
            patches += [(layer, name, watch.wrap("norms", getattr(layer, name)))
                        for name in LAYER_NORMS if getattr(layer, name) is not None]
        patches += [(decoder, "final_norm", watch.wrap("norms", decoder.final_norm)),
                    (decoder, "lm_heads", watch.wrap("heads", decoder.lm_heads))]
    patches.append((decoder, "embed", watch.wrap("embeddings", decoder.embed)))
    start = decoder.start

    def timed_start(*args, **kwargs):
        session = start(*args, **kwargs)
        for name in ("self_attention", "cross_attention"):  # an older Segue's has none: attention is then "other"
            if hasattr(session, name):
                setattr(session, name, watch.wrap("attention", getattr(session, name)))
        return watch.wrap("decoder", session, holds_parts=True)

    patches += [(decoder, "start", timed_start),
                (sampling, "guide", watch.wrap("sampling", sampling.guide)),
                (sampling, "process_logits", watch.wrap("sampling", sampling.process_logits)),
                (sampling, "undelay", watch.wrap("delay_pattern", sampling.undelay)),
                (StreamingDecoder, "update", chunk_watch(watch, StreamingDecoder.update))]
    if hasattr(codec, "BackgroundStream"):
        patches.append((codec.BackgroundStream, "update", watch.wrap("streaming_decode", codec.BackgroundStream.update)))

    stamps: list[float] = []
    at_first: dict[str, float] = {}
    at_last: dict[str, float] = {}

    def on_progress(done: int, total: int, eta: float | None) -> None:
        # Stamped before the step's stream update: the last step's update (and `finish`) falls outside.
        stamps.append(time.perf_counter())
        if done == max(1, total // 10):
            at_first.update(watch.seconds)
        if done == total:
            at_last.update(watch.seconds)

    with _replaced(patches):
        generator.generate(request, on_progress=on_progress)
    first = max(1, len(stamps) // 10)
    steps = len(stamps) - first
    per_step = {part: 1000 * (at_last.get(part, 0.0) - at_first.get(part, 0.0)) / steps
                for part in ("decoder", *DECODER_PARTS, *LOOP_PARTS)}
    step = 1000 * (stamps[-1] - stamps[first - 1]) / steps
    figures = {"step": step, **{part: per_step[part] for part in DECODER_PARTS}}
    figures["decoder_other"] = per_step["decoder"] - sum(per_step[part] for part in DECODER_PARTS)
    figures.update({part: per_step[part] for part in LOOP_PARTS})
    figures["loop_other"] = step - per_step["decoder"] - sum(per_step[part] for part in LOOP_PARTS)
    figures["streaming_decode_beside"] = 1000 * (
        at_last.get("streaming_decode_beside", 0.0) - at_first.get("streaming_decode_beside", 0.0)) / steps
    return {part: round(ms, 3) for part, ms in figures.items()}


def print_breakdowns(results: dict[str, dict], bandwidth_bytes_per_second: float) -> None:
    """One row per mode that has a breakdown, with the floor its weights' bytes set at this bandwidth."""
    rows = {mode: figures for mode, figures in results.items() if figures.get("step_breakdown_ms")}
    if not rows:
        return
    parts = list(next(iter(rows.values()))["step_breakdown_ms"])
    print("\nms per steady-state step (step_breakdown_ms); floor = weights' bytes / read bandwidth")
    widths = [max(8, len(part) + 2) for part in parts]
    print(f"{'mode':<24}{'floor':>7}" + "".join(f"{part:>{width}}" for part, width in zip(parts, widths, strict=True)))
    for mode, figures in rows.items():
        floor = 1000 * figures["weight_bytes_per_step"] / bandwidth_bytes_per_second
        breakdown = figures["step_breakdown_ms"]
        print(f"{mode:<24}{floor:>7.1f}"
              + "".join(f"{breakdown.get(part, float('nan')):>{width}.1f}" for part, width in zip(parts, widths, strict=True)))
