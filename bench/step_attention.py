"""A fast-mode step's self-attention: PyTorch's ops against the native call, fp32 and fp16 caches. (A benchmark.)

    python bench/step_attention.py [--positions 100,400,1500] [--json]

One step of musicgen-small attends in each of its 24 layers: two rows (guided and unguided), 16
heads of 64, one query over the cached positions. Timed per step (24 layers, each layer's cache its
own, the whole cache far larger than the CPU's caches, as in a real window), three ways:
- `pytorch`: the cache writes and fast_decoder.one_query_attention, on one thread below
  THREADED_ATTENTION_POSITIONS and on every thread from there, as fast mode ran them before;
- `native-fp32`, `native-fp16`: native/one_query_attention.c over an fp32 and an fp16 cache, on
  every thread (bridge/engine/musicgen/native_attention.py; fp16 is what fast mode uses).
It prints ms per step, the GB/s of keys and values read, and the CPU flags.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_speed import cpu_flags, cpu_model  # noqa: E402
from bridge.engine.musicgen.fast_decoder import THREADED_ATTENTION_POSITIONS, one_query_attention  # noqa: E402
from bridge.engine.musicgen.native_attention import attend_one_query, native_attention_available  # noqa: E402
from bridge.engine.musicgen.step_threads import on_every_thread, small_ops_on_one_thread  # noqa: E402

LAYERS, ROWS, HEADS, HEAD_DIM = 24, 2, 16, 64


def pytorch_way(qkv, keys, values, position: int) -> torch.Tensor:
    q, k, v = qkv.view(ROWS, 1, 3, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
    keys[:, :, position : position + 1] = k
    values[:, :, position : position + 1] = v
    visible = keys[:, :, : position + 1], values[:, :, : position + 1]
    if position + 1 < THREADED_ATTENTION_POSITIONS:
        return one_query_attention(q, *visible)
    return on_every_thread(one_query_attention, q, *visible)


def time_step(attend, dtype: torch.dtype, positions: int, repeats: int) -> tuple[float, float]:
    """(best ms per step, GB/s of keys and values read) of `attend` at `positions` cached positions."""
    keys = torch.randn(LAYERS, ROWS, HEADS, positions, HEAD_DIM).to(dtype)
    values = torch.randn_like(keys)
    qkv = torch.randn(ROWS, 1, 3 * HEADS * HEAD_DIM)

    def step() -> None:
        for layer in range(LAYERS):
            attend(qkv, keys[layer], values[layer], positions - 1)

    with torch.inference_mode(), small_ops_on_one_thread():
        step()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(10):
                step()
            best = min(best, (time.perf_counter() - started) / 10)
    read = 2 * keys.numel() * keys.element_size()
    return 1000 * best, read / best / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", default="100,400,1500", help="cached positions to time at (comma-separated)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    ways = {"pytorch": (pytorch_way, torch.float32)}
    if native_attention_available():
        native = lambda qkv, keys, values, position: attend_one_query(qkv, keys, values, position, HEADS)  # noqa: E731
        ways |= {"native-fp32": (native, torch.float32), "native-fp16": (native, torch.float16)}
    print(f"{cpu_model()}, {torch.get_num_threads()} threads; CPU flags: {cpu_flags()}")
    print(f"{'positions':>10}" + "".join(f"{name:>24}" for name in ways))
    results = {}
    for positions in map(int, args.positions.split(",")):
        row = {name: time_step(attend, dtype, positions, args.repeats) for name, (attend, dtype) in ways.items()}
        results[positions] = {name: {"ms_per_step": ms, "gb_per_second": rate} for name, (ms, rate) in row.items()}
        print(f"{positions:>10}" + "".join(f"{f'{ms:.2f} ms ({rate:.1f} GB/s)':>24}" for ms, rate in row.values()))
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": torch.get_num_threads(), "steps": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
