"""AudioGen through Segue's engine against plain transformers `generate`. (A benchmark, not a test.)

    python bench/audiogen_speed.py [--seconds 2] [--modes transformers,segue-exact,segue-fast] [--json]

Builds audiogen-medium's architecture with random weights (`audiogen-medium-random`: the 48-layer,
1536-wide LM, T5-large's encoder and the 16 kHz EnCodec; no download, cached in Segue's cache folder
after the first run, about 7.5 GB), then times each mode in a fresh process on the same prompt,
guidance 3, batch 1: steady-state decoder steps per second (after the first 10%; one step is 20 ms
of audio at 50 frames/s), the real-time factor of the whole job and peak RSS. Each mode loads the
model from disk first: that time is not counted. `bench/engine_speed.py --model audiogen-medium-random`
runs the same architecture through the general benchmark.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.engine.worker import WORKER_ENVIRONMENT  # noqa: E402  (imports no torch)

MODEL = "audiogen-medium-random"
PROMPT = "glass shattering on a concrete floor, then silence"
MODES = ("transformers", "segue-exact", "segue-fast")


def steady_steps_per_second(stamps: list[float]) -> float:
    first = max(1, len(stamps) // 10)
    return (len(stamps) - 1 - first) / (stamps[-1] - stamps[first])


def time_transformers(loaded, seconds: float) -> tuple[list[float], float]:
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    stamps: list[float] = []

    class Clock(LogitsProcessor):  # called once per decoder step
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    inputs = loaded.processor(text=[PROMPT], return_tensors="pt")
    with torch.inference_mode():
        audio = loaded.model.generate(
            **inputs, do_sample=True, guidance_scale=3.0, top_k=250,
            max_new_tokens=round(seconds * loaded.frame_rate) + 3, logits_processor=LogitsProcessorList([Clock()]),
        )
    return stamps, audio.shape[-1] / loaded.sample_rate


def time_segue(loaded, seconds: float, quality: str) -> tuple[list[float], float]:
    from bridge.engine.musicgen.generator import MusicGenerator
    from bridge.engine.request import GenerationRequest

    generator = MusicGenerator(loaded)
    generator.prepare(quality)  # int8 quantisation happens at load in the app, not per job
    stamps: list[float] = []
    result = generator.generate(
        GenerationRequest(prompt=PROMPT, model=MODEL, quality=quality, seed=1, seconds=seconds),
        on_progress=lambda done, total, eta: stamps.append(time.perf_counter()),
    )
    return stamps, result.takes[0].audio.shape[0] / loaded.sample_rate


def worker(mode: str, seconds: float) -> None:
    import torch

    from bridge.engine.musicgen.loading import load_model
    from bridge.engine.musicgen.reference import load_reference_model

    loaded = load_reference_model(MODEL) if mode == "transformers" else load_model(MODEL, "cpu")
    started = time.perf_counter()
    if mode == "transformers":
        stamps, audio_seconds = time_transformers(loaded, seconds)
    else:
        stamps, audio_seconds = time_segue(loaded, seconds, mode.removeprefix("segue-"))
    total = time.perf_counter() - started
    print(json.dumps({
        "mode": mode,
        "steps_per_second": steady_steps_per_second(stamps),
        "realtime_factor": audio_seconds / total,
        "steps": len(stamps),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(),
    }))


def cpu_flags() -> str:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
    return " ".join(flag for flag in wanted if f" {flag}" in flags) or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the timed clip (default 2)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seconds)
        return 0

    from bridge.engine.musicgen.loading import resolve_checkpoint

    resolve_checkpoint(MODEL)  # build and save the random model once, outside the timed processes
    env = {**WORKER_ENVIRONMENT, **os.environ}  # as the engine runs
    load_before = os.getloadavg()[0]
    results = {}
    for mode in args.modes.split(","):
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--worker", mode, "--seconds", str(args.seconds)],
                              capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"\naudiogen-medium architecture (random weights), guidance 3, batch 1, {args.seconds:g} s clip")
    print(f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print(f"{'mode':<14}{'steps/s':>9}{'x realtime':>12}{'peak RSS':>11}")
    for mode, figures in results.items():
        print(f"{mode:<14}{figures['steps_per_second']:>9.2f}{figures['realtime_factor']:>12.3f}"
              f"{figures['peak_rss_bytes'] / 2**30:>9.2f} GiB")
    base = results.get("transformers", {}).get("steps_per_second")
    if base and "segue-fast" in results:
        print(f"segue fast: {results['segue-fast']['steps_per_second'] / base:.1f}x transformers' steps/s")
    if args.json:
        print(json.dumps({"results": results, "load_average": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
