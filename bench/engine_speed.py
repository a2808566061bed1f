"""How fast is Segue's engine against plain transformers `generate`? (A benchmark, not a test.)

    python bench/engine_speed.py [--seconds 8] [--device cpu] [--json]

Builds the musicgen-small architecture with random weights (`small-random`, no download; cached in
Segue's cache folder after the first run), then runs, each in a fresh process so peak memory is
honest, on the same text prompt with guidance 3, batch 1:
- transformers: `model.generate(do_sample=True, guidance_scale=3, top_k=250)`;
- segue exact: Segue's engine, quality exact (the model's own weights);
- segue fast: Segue's engine, quality fast (int8 weights on a CPU; fp16 on a GPU).
It prints steps/s in the steady state (decoder steps after the first 10%; one step = 20 ms of
audio), the real-time factor of the whole job, time to the first decoded audio chunk for a text
prompt and for an 8-second audio prompt (model loaded and prepared), and peak RSS. With --json the
last line is `{"speedup_vs_transformers": X, ...}` (fast mode's steady-state steps/s over
transformers').
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "small-random"
PROMPT = "lo-fi hip hop beat with warm rhodes and dusty drums"
MODES = ("transformers", "segue-exact", "segue-fast")
AUDIO_PROMPT_SECONDS = 8.0


def steady_steps_per_second(stamps: list[float]) -> float:
    """Steps per second over the steps after the first 10% (prefill and warm-up excluded)."""
    first = max(1, len(stamps) // 10)
    return (len(stamps) - 1 - first) / (stamps[-1] - stamps[first])


def run_transformers(loaded, seconds: float) -> dict:
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    stamps: list[float] = []

    class Clock(LogitsProcessor):  # called once per decoder step: a timestamp per step
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    inputs = {name: value.to(loaded.device) for name, value in loaded.processor(text=[PROMPT], return_tensors="pt").items()}
    frames = round(seconds * loaded.frame_rate)

    def generate(new_frames: int):
        with torch.inference_mode():
            return loaded.model.generate(
                **inputs, do_sample=True, guidance_scale=3.0, top_k=250, max_new_tokens=new_frames + 3,
                logits_processor=LogitsProcessorList([Clock()]),
            )

    generate(10)  # warm-up
    stamps.clear()
    started = time.perf_counter()
    audio = generate(frames)
    total = time.perf_counter() - started
    return {
        "steps_per_second": steady_steps_per_second(stamps),
        "realtime_factor": audio.shape[-1] / loaded.sample_rate / total,
        "first_chunk_seconds": total,  # no streaming: the first audio is the whole clip
        "first_chunk_audio_prompt_seconds": None,
        "steps": len(stamps),
    }


def run_segue(loaded, seconds: float, quality: str) -> dict:
    import numpy as np

    from bridge.engine.musicgen.generator import MusicGenerator
    from bridge.engine.request import GenerationRequest

    generator = MusicGenerator(loaded)
    generator.prepare(quality)
    request = dict(prompt=PROMPT, model=MODEL, quality=quality, seed=1)
    generator.generate(GenerationRequest(**request, seconds=0.2))  # warm-up

    stamps: list[float] = []
    first_chunk: list[float] = []
    started = time.perf_counter()
    result = generator.generate(
        GenerationRequest(**request, seconds=seconds),
        on_progress=lambda done, total, eta: stamps.append(time.perf_counter()),
        on_chunk=lambda start, audio: first_chunk.append(time.perf_counter()) if not first_chunk else None,
    )
    total = time.perf_counter() - started

    rate = loaded.sample_rate
    noise = np.random.default_rng(0).standard_normal(round(AUDIO_PROMPT_SECONDS * rate)).astype(np.float32)
    prompt_audio = 0.1 * noise + 0.3 * np.sin(2 * np.pi * 110 * np.arange(noise.size) / rate).astype(np.float32)
    prompted_chunk: list[float] = []
    prompted_start = time.perf_counter()
    generator.generate(
        GenerationRequest(**request, seconds=1.0, audio=prompt_audio, audio_sample_rate=rate),
        on_chunk=lambda start, audio: prompted_chunk.append(time.perf_counter()) if not prompted_chunk else None,
    )
    return {
        "steps_per_second": steady_steps_per_second(stamps),
        "realtime_factor": result.takes[0].audio.shape[0] / rate / total,
        "first_chunk_seconds": first_chunk[0] - started,
        "first_chunk_audio_prompt_seconds": prompted_chunk[0] - prompted_start,
        "steps": len(stamps),
        "precision": result.precision,
    }


def worker(mode: str, seconds: float, device: str) -> None:
    """One mode in this (fresh) process; prints one JSON line."""
    import torch

    from bridge.engine.musicgen.loading import load_model

    loaded = load_model(MODEL, device)
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    if mode == "transformers":
        figures = run_transformers(loaded, seconds)
    else:
        figures = run_segue(loaded, seconds, mode.removeprefix("segue-"))
    if loaded.device.type == "cuda":
        figures["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    figures.update(
        mode=mode,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        weight_bytes=weight_bytes,
        threads=torch.get_num_threads(),
    )
    print(json.dumps(figures))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the timed clip (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--family", choices=("musicgen", "stable-audio"), action="append",
                        help="add stable-audio to time it in the same run after MusicGen (bench/stable_audio_speed.py)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seconds, args.device)
        return 0

    from bridge.engine.musicgen.loading import load_model

    load_model(MODEL, "cpu")  # build and cache small-random once, outside the timed processes
    # Every mode runs as Segue's engine worker does: OpenMP threads sleep rather than spin when idle.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    results = {}
    for mode in args.modes.split(","):
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--worker", mode, "--seconds", str(args.seconds), "--device", args.device],
            capture_output=True, text=True, check=False, env=env,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmusicgen-small architecture (random weights), guidance 3, batch 1, {args.seconds:g} s clip")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {args.device}; load average {load:.2f} "
          f"(OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']})")
    header = f"{'mode':<14}{'steps/s':>9}{'x realtime':>12}{'1st chunk':>11}{'1st chunk 8s-prompt':>21}{'peak RSS':>10}"
    print(header)
    base = results.get("transformers", {}).get("steps_per_second")
    for mode, figures in results.items():
        prompted = figures["first_chunk_audio_prompt_seconds"]
        print(
            f"{mode:<14}{figures['steps_per_second']:>9.1f}{figures['realtime_factor']:>12.2f}"
            f"{figures['first_chunk_seconds']:>10.2f}s{(f'{prompted:.2f}s' if prompted else '-'):>21}"
            f"{figures['peak_rss_bytes'] / 2**30:>7.2f}GiB"
        )
    weights = next(iter(results.values()))["weight_bytes"]
    print(f"fp32 weights: {weights / 2**30:.2f} GiB (+25% = {1.25 * weights / 2**30:.2f} GiB)")
    summary = {}
    if base and "segue-fast" in results:
        summary["speedup_vs_transformers"] = round(results["segue-fast"]["steps_per_second"] / base, 2)
    summary.update(machine=cpu_model(), device=args.device, load_average=round(load, 2), clip_seconds=args.seconds)
    if base:
        for mode, figures in results.items():
            if mode != "transformers":
                ratio = figures["steps_per_second"] / base
                summary[f"{mode}_speedup"] = round(ratio, 2)
                print(f"{mode} / transformers: {ratio:.2f}x steps/s")
    for mode, figures in results.items():
        summary[mode] = {key: (round(value, 3) if isinstance(value, float) else value) for key, value in figures.items()}
    if args.json:
        print(json.dumps(summary))
    if "stable-audio" in (args.family or ()):
        from bench.stable_audio_speed import main as stable_audio_main

        return stable_audio_main(["--seconds", str(args.seconds)] + (["--json"] if args.json else []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
