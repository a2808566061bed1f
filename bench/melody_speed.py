"""MusicGen-Melody's speed: Segue's engine against transformers `generate`. (A benchmark, not a test.)

    python bench/melody_speed.py [--model melody-random] [--seconds 8] [--device cpu] [--modes ...] [--json]

`melody-random` is musicgen-melody's architecture (1.5B: t5-base, 48 decoder layers of 1536, a
prefix of 235 chroma frames + text instead of cross-attention) with random weights, built locally
(about 6 GB in Segue's cache folder after the first run); `tiny-melody` runs in seconds. Every mode
follows the same 8-second melody (a chord per bar at 120 BPM) with guidance 3, batch 1, each in a
fresh process:
- transformers: `model.generate(input_features=<Segue's chroma>, do_sample=True, top_k=250)`;
- segue-exact / segue-fast: Segue's engine (fast: int8 weights on a CPU).
It prints steady-state steps/s (bench/engine_speed.py's measure: steps after the first 10%), the
real-time factor, peak RSS, the CPU and the load average.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_speed import cpu_model, steady_steps_per_second, time_generate  # noqa: E402  (bench/ is this script's folder)

from bridge.engine.worker import WORKER_ENVIRONMENT  # noqa: E402  (imports no torch)

PROMPT = "warm cinematic strings over a piano"
MODES = ("transformers", "segue-exact", "segue-fast")
CHORDS_HZ = ((261.63, 329.63, 392.0), (220.0, 261.63, 329.63), (174.61, 220.0, 261.63), (196.0, 246.94, 293.66))
BAR_SECONDS = 2.0  # 120 BPM, 4/4


def chord_melody(sample_rate: int):
    """Four bars of chords (C, Am, F, G), one a bar: what a producer would drop on the Melody well."""
    import numpy as np

    t = np.arange(round(BAR_SECONDS * sample_rate)) / sample_rate
    bars = [sum(0.2 * np.sin(2 * np.pi * f * t) for f in chord) for chord in CHORDS_HZ]
    return np.concatenate(bars).astype(np.float32)


def run_transformers(loaded, seconds: float, melody) -> dict:
    import numpy as np
    import torch

    from bridge.engine.melody_timeline import MelodyTimeline
    from bridge.engine.musicgen.melody import window_chroma

    clip = round(seconds * loaded.sample_rate)
    chroma = window_chroma(loaded, MelodyTimeline(np.resize(melody, clip), None, loaded.sample_rate), 0)
    text = loaded.processor.tokenizer([PROMPT], return_tensors="pt")
    inputs = dict(text, input_features=torch.from_numpy(chroma)[None].to(loaded.device, loaded.dtype))
    steps_per_second, realtime_factor, _, _ = time_generate(loaded, inputs, seconds)
    return {"steps_per_second": steps_per_second, "realtime_factor": realtime_factor}


def run_segue(loaded, seconds: float, melody, quality: str) -> dict:
    from bridge.engine.musicgen.generator import MusicGenerator
    from bridge.engine.request import GenerationRequest

    generator = MusicGenerator(loaded)
    generator.prepare(quality)
    request = dict(prompt=PROMPT, model=loaded.model_id, quality=quality, seed=1, melody=melody,
                   melody_sample_rate=loaded.sample_rate)
    generator.generate(GenerationRequest(**request, seconds=0.2))  # warm-up
    stamps: list[float] = []
    started = time.perf_counter()
    result = generator.generate(
        GenerationRequest(**request, seconds=seconds), on_progress=lambda *_: stamps.append(time.perf_counter())
    )
    total = time.perf_counter() - started
    return {
        "steps_per_second": steady_steps_per_second(stamps),
        "realtime_factor": result.takes[0].audio.shape[0] / loaded.sample_rate / total,
        "precision": result.precision,
    }


def worker(model: str, mode: str, seconds: float, device: str) -> None:
    """One mode in this (fresh) process; prints one JSON line."""
    import torch

    from bridge.engine.musicgen.loading import load_model
    from bridge.engine.musicgen.reference import load_reference_model

    loaded = load_reference_model(model, device) if mode == "transformers" else load_model(model, device)
    melody = chord_melody(loaded.sample_rate)
    if mode == "transformers":
        figures = run_transformers(loaded, seconds, melody)
    else:
        figures = run_segue(loaded, seconds, melody, mode.removeprefix("segue-"))
    figures.update(mode=mode, peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   threads=torch.get_num_threads())
    print(json.dumps(figures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="melody-random", help="a melody model (default melody-random)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the timed clip (default 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.worker, args.seconds, args.device)
        return 0

    from bridge.engine.musicgen.loading import load_model

    if not load_model(args.model, "cpu").takes_melody:  # also builds and caches a random model once
        raise SystemExit(f"{args.model} is not a melody model")
    env = {**WORKER_ENVIRONMENT, **os.environ}
    results = {}
    for mode in args.modes.split(","):
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--worker", mode, "--model", args.model, "--seconds", str(args.seconds),
             "--device", args.device],
            capture_output=True, text=True, check=False, env=env,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])

    load = os.getloadavg()[0]
    flags = sorted({flag for flag in Path("/proc/cpuinfo").read_text().split() if flag.startswith(("avx512", "avx2", "amx"))})
    print(f"\n{args.model} with a melody, guidance 3, batch 1, {args.seconds:g} s clip")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {args.device}; flags {' '.join(flags)}; load average {load:.2f}")
    print(f"{'mode':<14}{'steps/s':>9}{'x realtime':>12}{'peak RSS':>11}")
    for mode, figures in results.items():
        print(f"{mode:<14}{figures['steps_per_second']:>9.2f}{figures['realtime_factor']:>12.3f}"
              f"{figures['peak_rss_bytes'] / 2**30:>8.2f}GiB")
    if args.json:
        base = results.get("transformers", {}).get("steps_per_second")
        summary = {"model": args.model, "load_average": round(load, 2), "clip_seconds": args.seconds, "results": results}
        if base and "segue-fast" in results:
            summary["speedup_vs_transformers"] = round(results["segue-fast"]["steps_per_second"] / base, 2)
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
