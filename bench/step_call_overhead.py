"""What a fast-mode step pays around each native-int8 call in Python and PyTorch. (A micro-benchmark, not a test.)

    python bench/step_call_overhead.py [--calls 20000]

A step makes ~145 weight-reading calls (24 layers x q/k/v, self-attention out, cross-attention q and
out, fc1, fc2, and the heads) with a LayerNorm before and a GELU or a residual sum after many of
them. On a 64 x 64 layer (the kernel's own work ~1 us) this times, per call, on the engine's two
threads (waiting passively, so each call wakes the second) inside `small_ops_on_one_thread` as a
step runs them:
- the bare ctypes call of segue_int8_rows_fused with every argument ready (the floor);
- fused_step.linear_around with a norm and a residual sum (what a step runs);
- the same as PyTorch ops around the kernel's plain call (a step before the fusing).
The CPU flags are printed with the figures.
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
from bridge.engine.musicgen.fused_step import LayerNorm, linear_around  # noqa: E402
from bridge.engine.musicgen.native_int8 import NativeInt8Linear, describe_build, native_int8_available  # noqa: E402
from bridge.engine.musicgen.step_threads import small_ops_on_one_thread  # noqa: E402

WIDTH = 64


def microseconds_per_call(run, calls: int) -> float:
    for _ in range(calls // 20):  # warm-up
        run()
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return 1e6 * (time.perf_counter() - started) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    if not native_int8_available():
        print("Segue's native kernel library could not be built here (no C compiler?)")
        return 1
    torch.manual_seed(0)
    linear = NativeInt8Linear(torch.randn(WIDTH, WIDTH))
    norm = LayerNorm(torch.ones(WIDTH), torch.zeros(WIDTH), 1e-5)
    x, residual, out = torch.randn(2, 1, WIDTH), torch.randn(2, 1, WIDTH), torch.empty(2, WIDTH)
    threads = torch.get_num_threads()
    bare = (x.data_ptr(), 2, WIDTH, WIDTH, *linear._weights, out.data_ptr(), WIDTH, threads, *norm.pointers, 0,
            residual.data_ptr(), WIDTH)
    call = linear.lib.segue_int8_rows_fused
    with torch.inference_mode(), small_ops_on_one_thread():
        figures = {
            "bare ctypes call": microseconds_per_call(lambda: call(*bare), args.calls),
            "linear_around (norm, sum)": microseconds_per_call(lambda: linear_around(linear, x, norm, False, residual),
                                                               args.calls),
            "PyTorch ops around the call": microseconds_per_call(lambda: residual + linear(norm(x)), args.calls),
        }
    identity = cpu_identity()
    print(f"machine: {identity.model}; flags: {' '.join(identity.flags)}")
    print(f"native library: {describe_build()}; {threads} threads; a {WIDTH} x {WIDTH} layer, 2 rows")
    for name, value in figures.items():
        print(f"{name:<30}{value:8.1f} us per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
