"""What does sending a job through Ray Serve cost? (A benchmark, not a test.)

    python bench/remote_overhead.py [--model tiny] [--seconds 4] [--repeats 5] [--json]

Runs the same job (text prompt, fixed seed, CPU) first on the local engine (EngineClient: its own
worker process), then on `segue engine serve`'s application in a local Ray instance on this machine
(RemoteEngineClient over Serve's HTTP proxy on 127.0.0.1), each warmed up by one job first, and
prints the median time from submit to the first audio chunk and to the finished result, and what
the remote path adds (goal: under 150 ms added to the first chunk on localhost). The two engines
never run at the same time. `--model small-random` gives musicgen-small's real sizes.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine_speed import cpu_model  # noqa: E402

from bridge.engine.events import AudioChunk, JobFinished  # noqa: E402
from bridge.engine.request import GenerationRequest  # noqa: E402

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def cpu_flags() -> list[str]:
    try:
        line = next(row for row in Path("/proc/cpuinfo").read_text().splitlines() if row.startswith("flags"))
    except (OSError, StopIteration):
        return []
    present = set(line.split(":", 1)[1].split())
    return [flag for flag in CPU_FLAGS if flag in present]


class Timings:
    """on_event for one client: when each job's first chunk and its result arrived."""

    def __init__(self) -> None:
        self.first_chunk: dict[int, float] = {}
        self.finished: dict[int, float] = {}
        self.engine_seconds: dict[int, float] = {}  # as the engine's worker timed the job itself
        self.done = threading.Event()

    def __call__(self, event) -> None:
        now = time.perf_counter()
        if isinstance(event, AudioChunk):
            self.first_chunk.setdefault(event.job_id, now)
        elif isinstance(event, JobFinished):
            self.finished[event.job_id] = now
            self.engine_seconds[event.job_id] = event.result.seconds_taken


def measure(engine, timings: Timings, request: GenerationRequest, repeats: int) -> dict:
    engine.wait(engine.submit(request), timeout=600)  # warm-up: model loaded, decoder prepared
    first, total, engine_seconds = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        job = engine.submit(request)
        engine.wait(job, timeout=600)
        first.append(timings.first_chunk[job] - started)
        total.append(timings.finished[job] - started)
        engine_seconds.append(timings.engine_seconds[job])
    return {"first_chunk_seconds": statistics.median(first), "total_seconds": statistics.median(total),
            "engine_seconds": statistics.median(engine_seconds),
            "first_chunk_all": [round(value, 4) for value in first], "total_all": [round(value, 4) for value in total]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="model id (default tiny; small-random for musicgen-small's sizes)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the clip (default 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed jobs per engine (default 5)")
    parser.add_argument("--port", type=int, default=8765, help="Serve's HTTP port (default 8765)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    request = GenerationRequest(prompt="lo-fi hip hop beat with warm rhodes", model=args.model,
                                seconds=args.seconds, seed=1234)
    load_before = os.getloadavg()[0]

    from bridge.engine.worker import EngineClient

    print("local engine ...", file=sys.stderr, flush=True)
    timings = Timings()
    with EngineClient("cpu", on_event=timings) as engine:
        local = measure(engine, timings, request, args.repeats)

    from bridge.engine.remote import cluster
    from bridge.engine.remote.client import RemoteEngineClient

    print("Ray Serve engine ...", file=sys.stderr, flush=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    started_here = cluster.start_ray()
    try:
        url = cluster.serve_engine(args.model, "127.0.0.1", args.port, token=None)
        timings = Timings()
        with RemoteEngineClient(url, on_event=timings) as engine:
            remote = measure(engine, timings, request, args.repeats)
    finally:
        cluster.stop(started_here)

    load_after = os.getloadavg()[0]
    added_first = remote["first_chunk_seconds"] - local["first_chunk_seconds"]
    added_total = remote["total_seconds"] - local["total_seconds"]
    print(f"\n{args.model}, {args.seconds:g} s clip, seed 1234, CPU, median of {args.repeats} warm jobs")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, flags {' '.join(cpu_flags()) or '-'}; "
          f"load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"{'engine':<12}{'1st chunk':>11}{'total':>10}{'in the worker':>15}")
    for name, figures in (("local", local), ("Ray Serve", remote)):
        print(f"{name:<12}{figures['first_chunk_seconds'] * 1000:>9.0f}ms{figures['total_seconds']:>9.2f}s"
              f"{figures['engine_seconds']:>14.2f}s")
    print(f"added by Ray Serve: {added_first * 1000:+.0f} ms to the first chunk "
          f"({'within' if added_first < 0.150 else 'over'} the 150 ms goal), {added_total * 1000:+.0f} ms in total")
    if args.json:
        print(json.dumps({
            "added_first_chunk_ms": round(added_first * 1000, 1), "added_total_ms": round(added_total * 1000, 1),
            "local": local, "remote": remote, "model": args.model, "clip_seconds": args.seconds,
            "machine": cpu_model(), "cpu_flags": cpu_flags(), "load_average": [round(load_before, 2), round(load_after, 2)],
        }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
