"""EnCodec's decoder as the streaming decode runs it: nn.LSTM and oneDNN against Segue's paths. (A micro-benchmark, not a test.)

    python bench/codec_decode.py [--repeats 5]

On musicgen-small's codec (small-random: its architecture, random weights; the cost per frame is
the same), as the engine runs it:
- an 8 s audio prompt's 400 frames through the decoder's LSTM before the first step, on every
  thread, mono and stereo (MusicGenerator._decode_prompt_frames);
- the streaming decode's chunks (4, 8, 16, then 25 frames) on one thread, as the chunk thread beside
  the steps decodes them; back to back, and after reading 256 MB elsewhere, as a step's weights
  evict the codec's between chunks;
- the whole streaming decode of 8 s, ms per frame (the LSTM and the upsampling convolutions): as
  before (nn.LSTM, oneDNN's transposed convolutions), with the native LSTM, and with the first
  upsampling layer's transposed convolution as a GEMM too (modules/encodec.py).
Best of `--repeats`; ratios are nn.LSTM's time over the native call's, in the same run; GB/s is
the recurrent weights' bytes a frame (16.8 MB a layer) over the native call's time: above the DRAM's
read bandwidth they came from the last-level cache.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bridge.engine.worker import WORKER_ENVIRONMENT  # noqa: E402  (imports no torch)

for name, value in WORKER_ENVIRONMENT.items():  # as the engine's worker runs, set before torch loads
    os.environ.setdefault(name, value)
import torch  # noqa: E402

from bridge.engine.cpu_kernels import cpu_identity  # noqa: E402
from bridge.engine.musicgen import codec  # noqa: E402
from bridge.engine.musicgen.loading import load_model  # noqa: E402
from bridge.engine.musicgen.modules.encodec import EncodecConvTranspose1d  # noqa: E402
from bridge.engine.musicgen.native_lstm import native_lstm_applies, run_lstm  # noqa: E402

PROMPT_FRAMES = 400  # 8 s at 50 frames a second
CHUNKS = (4, 8, 16, 25)


def nn_lstm(lstm, sequence, state=None):
    return lstm(sequence, state)


def convolution(layer, hidden):
    return layer.conv(hidden)


def best_seconds(run, repeats: int, before=None) -> float:
    best = float("inf")
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    loaded = load_model("small-random", "cpu")
    lstm_block = loaded.model.audio_encoder.decoder.layers[1]  # EncodecLSTM; `native` picks the arm below
    lstm = lstm_block.lstm
    hidden = lstm.hidden_size
    with torch.inference_mode():
        applies = native_lstm_applies(lstm, torch.zeros(1, 1, hidden))
    if not applies:
        print("the native LSTM does not run here (no AVX2 + FMA build of Segue's native kernels)")
        return 1
    threads = torch.get_num_threads()
    generator = torch.Generator().manual_seed(0)
    elsewhere = torch.empty(64 * 2**20)  # 256 MB: more than any last-level cache
    evict = elsewhere.zero_
    rows = []

    def compare(name: str, sequence: torch.Tensor, before=None) -> None:
        with torch.inference_mode():
            reference = best_seconds(lambda: nn_lstm(lstm, sequence), args.repeats, before)
            native = best_seconds(lambda: run_lstm(lstm, sequence), args.repeats, before)
        rows.append((name, sequence.shape[0], reference, native))

    for streams in (1, 2):
        sequence = torch.randn(PROMPT_FRAMES, streams, hidden, generator=generator)
        compare(f"prompt, {streams} stream(s), {threads} threads", sequence)
    torch.set_num_threads(1)
    try:
        for frames in CHUNKS:
            sequence = torch.randn(frames, 1, hidden, generator=generator)
            compare("chunk, 1 thread, back to back", sequence)
            compare("chunk, 1 thread, after 256 MB read elsewhere", sequence, before=evict)
        codes = torch.randint(0, 2048, (1, loaded.num_codebooks, PROMPT_FRAMES), generator=generator)
        streamed = {}
        as_gemm = EncodecConvTranspose1d._transposed
        arms = (("nn.LSTM, oneDNN's transposed convolutions", False, convolution),
                ("the native LSTM", True, convolution), ("and the first transposed one as a GEMM", True, as_gemm))
        for name, native, transposed in arms:
            lstm_block.native, EncodecConvTranspose1d._transposed = native, transposed
            decoder = codec.StreamingDecoder(loaded, lambda start, audio: None, 0, PROMPT_FRAMES * loaded.samples_per_frame)
            started = time.perf_counter()
            for frames in range(1, PROMPT_FRAMES + 1):
                decoder.update(codes[..., :frames])
            decoder.finish(codes)
            streamed[name] = (time.perf_counter() - started) / PROMPT_FRAMES
        lstm_block.native, EncodecConvTranspose1d._transposed = True, as_gemm
    finally:
        torch.set_num_threads(threads)

    identity = cpu_identity()
    print(f"machine: {identity.model}; flags: {' '.join(identity.flags)}; {threads} threads")
    print(f"musicgen-small's codec LSTM: {lstm.num_layers} layers of {hidden} units; "
          f"{4 * hidden * hidden * 4 / 1e6:.1f} MB of recurrent weights a layer")
    frame_bytes = lstm.num_layers * 4 * hidden * hidden * 4
    print(f"{'case':<48}{'frames':>7}{'nn.LSTM ms':>12}{'native ms':>11}{'ratio':>7}{'native ms/frame':>17}{'GB/s':>7}")
    for name, frames, reference, native in rows:
        print(f"{name:<48}{frames:>7}{1e3 * reference:>12.1f}{1e3 * native:>11.1f}{reference / native:>7.2f}"
              f"{1e3 * native / frames:>17.2f}{frames * frame_bytes / native / 1e9:>7.1f}")
    print(f"streaming decode of {PROMPT_FRAMES} frames on one thread (chunks of 4..25 frames, LSTM and upsampling):")
    before = next(iter(streamed.values()))
    for name, seconds in streamed.items():
        print(f"  {name:<44}{1e3 * seconds:6.2f} ms a frame ({before / seconds:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
