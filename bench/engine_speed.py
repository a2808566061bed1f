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
prompt and for an 8-second audio prompt (model loaded and prepared), and peak RSS.

It also states the physical limit: this machine's memory read bandwidth (measured), the bytes of
weights each mode reads per step, the steps/s that bandwidth allows, and each mode's fraction of
it; the CPU's instruction-set flags and the int8 kernel fast mode picked here; and for the audio
prompt, `prefill_bound_seconds`: the prefill's matrix products (linears and causal attention) at the
fastest GEMM measured on the model's own prefill shapes (fp32, or the chosen kernel's), and
`audio_prompt_bound_seconds`: that, plus EnCodec's encoder FLOPs at that rate, plus the decoder steps
up to the first chunk at the bandwidth bound (prompt_bounds). The first chunk is timed on
PROMPT_REPEATS prompts (median, samples kept), where it goes (encode, text, prefill) part by part,
and again for prompts prepared before submit (`first_chunk_prepared_prompt_seconds`, against
`prepared_prompt_bound_seconds`: the guided row's products and the steps), and for prompts prepared
with their words (`first_chunk_text_prepared_prompt_seconds`, as the panel does once the typing
pauses and for another take of the same words: only the steps are left). The bound's GEMM is
timed again right before each sample and each sample is divided by its own bound (this host's speed
moved by up to 1.5x within a run); `..._vs_bound` is the median of those ratios, `..._vs_bound_samples`
each. With --json the last line is
`{"speedup_vs_transformers": X, "fraction_of_bandwidth_limit": F, "first_chunk_audio_prompt_seconds": S,
"prefill_bound_seconds": B, "audio_prompt_bound_seconds": A, ...}` (fast mode's figures).

For each Segue mode it also breaks a steady-state step down (`step_breakdown_ms`: linears,
attention, norms, heads, embeddings, sampling, delay pattern, streaming decode, the rest;
bench/step_breakdown.py), gives `cpu_ms_per_step` (every thread's CPU time: steadier than wall time
on a loaded machine), and times the clip both with audio chunks decoded between steps (the default)
and on their own thread beside them (`steps_per_second_chunks_between`, `..._beside`). `--baseline TREE` runs each Segue mode
from another checkout too (e.g. `git archive <commit> | tar -x -C TREE`), right before this one's,
as `MODE@baseline`: before and after in the same run, each with the load average at its start.

A mode is a function in RUNNERS: (loaded model, seconds) -> figures; other model families add
theirs (and their own model) there.
"""

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.step_breakdown import print_breakdowns, step_breakdown_ms  # noqa: E402
from bridge.engine.worker import WORKER_ENVIRONMENT  # noqa: E402  (imports no torch)

MODEL = "small-random"
PROMPT = "lo-fi hip hop beat with warm rhodes and dusty drums"
AUDIO_PROMPT_SECONDS = 8.0
BOUND_REPEATS = 5  # timings of the bound's products (best taken)
PROMPT_REPEATS = 3  # first-chunk timings per kind of prompt (median reported)
BREAKDOWN_SECONDS = 4.0  # the per-step breakdown's own clip (a second generation, every part timed)


def steady_steps_per_second(stamps: list[float]) -> float:
    """Steps per second over the steps after the first 10% (prefill and warm-up excluded)."""
    first = max(1, len(stamps) // 10)
    return (len(stamps) - 1 - first) / (stamps[-1] - stamps[first])


def time_generate(loaded, inputs: dict, seconds: float) -> tuple[float, float, float, int]:
    """Time transformers' `generate` (sampling, guidance 3, top-k 250) on `inputs` for `seconds` of audio,
    after a short warm-up: (steady steps/s, real-time factor, total seconds, steps)."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    stamps: list[float] = []

    class Clock(LogitsProcessor):  # called once per decoder step: a timestamp per step
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    def generate(new_frames: int):
        with torch.inference_mode():
            return loaded.model.generate(
                **inputs, do_sample=True, guidance_scale=3.0, top_k=250, max_new_tokens=new_frames + 3,
                logits_processor=LogitsProcessorList([Clock()]),
            )

    generate(10)  # warm-up
    stamps.clear()
    started = time.perf_counter()
    audio = generate(round(seconds * loaded.frame_rate))
    total = time.perf_counter() - started
    return steady_steps_per_second(stamps), audio.shape[-1] / loaded.sample_rate / total, total, len(stamps)


def run_transformers(loaded, seconds: float) -> dict:
    inputs = {name: value.to(loaded.device) for name, value in loaded.processor(text=[PROMPT], return_tensors="pt").items()}
    steps_per_second, realtime_factor, total, steps = time_generate(loaded, inputs, seconds)
    return {
        "steps_per_second": steps_per_second,
        "realtime_factor": realtime_factor,
        "first_chunk_seconds": total,  # no streaming: the first audio is the whole clip
        "first_chunk_audio_prompt_seconds": None,
        "steps": steps,
        "kernel": "dense",
        "weight_bytes_per_step": bytes_per_step(loaded),
    }


RUNNERS = {
    "transformers": run_transformers,
    "segue-exact": lambda loaded, seconds: run_segue(loaded, seconds, "exact"),
    "segue-fast": lambda loaded, seconds: run_segue(loaded, seconds, "fast"),
}


def run_segue(loaded, seconds: float, quality: str) -> dict:
    import numpy as np

    from bridge.engine.musicgen.generator import MusicGenerator
    from bridge.engine.request import GenerationRequest

    generator = MusicGenerator(loaded)
    generator.prepare(quality)
    decoder, _ = generator.decoder_for(quality)
    request = dict(prompt=PROMPT, model=loaded.model_id, quality=quality, seed=1)
    generator.generate(GenerationRequest(**request, seconds=0.2))  # warm-up

    stamps: list[float] = []
    first_chunk: list[float] = []
    started = started_text = time.perf_counter()
    cpu_started = time.process_time()
    result = generator.generate(
        GenerationRequest(**request, seconds=seconds),
        on_progress=lambda done, total, eta: stamps.append(time.perf_counter()),
        on_chunk=lambda start, audio: first_chunk.append(time.perf_counter()) if not first_chunk else None,
    )
    total = time.perf_counter() - started
    cpu_ms_per_step = 1000 * (time.process_time() - cpu_started) / len(stamps)  # every thread's, so steadier under load

    # The same clip with audio chunks decoded the other way (beside the steps or between them): which helps here?
    other_stamps: list[float] = []
    generator.stream_on_thread = not generator.stream_on_thread
    generator.generate(GenerationRequest(**request, seconds=seconds),
                       on_progress=lambda done, total, eta: other_stamps.append(time.perf_counter()))
    generator.stream_on_thread = not generator.stream_on_thread
    chunk_ways = {generator.stream_on_thread: steady_steps_per_second(stamps),
                  not generator.stream_on_thread: steady_steps_per_second(other_stamps)}

    rate = loaded.sample_rate
    noise = np.random.default_rng(0).standard_normal(round(AUDIO_PROMPT_SECONDS * rate)).astype(np.float32)
    prompt_audio = 0.1 * noise + 0.3 * np.sin(2 * np.pi * 110 * np.arange(noise.size) / rate).astype(np.float32)
    # Each timing on its own prompt (new audio: no cache helps), PROMPT_REPEATS times; the median is
    # reported, every sample kept: one sample on a shared 2-core machine moved by 1.6x between runs.
    sources = [np.roll(prompt_audio, shift * rate // 7) * (1.0 - 0.01 * shift) for shift in range(3 * PROMPT_REPEATS)]
    prompted = [GenerationRequest(**request, seconds=1.0, audio=source, audio_sample_rate=rate)
                for source in sources[:PROMPT_REPEATS]]
    prompt_positions = round(AUDIO_PROMPT_SECONDS * loaded.frame_rate) + 1  # the start token and every frame
    # Each sample's bound is timed right before it (gemm_timings), its ratio taken against that one
    unprepared, unprepared_timings = [], []
    for each in prompted:  # prompts this generator has not seen, and words it has not encoded
        unprepared_timings.append(gemm_timings(loaded, decoder, prompt_positions))
        forget_texts(generator)
        unprepared.append(first_chunk_seconds(generator, each))

    # Continue my track prepares the source while the producer types (EngineClient.prepare): other
    # prompts, encoded and their unguided rows prefilled before the job is submitted, its words new.
    prepared, prepare_seconds, prepared_timings = [], [], []
    for source in sources[PROMPT_REPEATS : 2 * PROMPT_REPEATS]:
        job = GenerationRequest(**request, seconds=1.0, audio=source, audio_sample_rate=rate)
        started = time.perf_counter()
        generator.prepare_request(dataclasses.replace(job, prompt=""))  # no words yet
        prepare_seconds.append(time.perf_counter() - started)
        prepared_timings.append(gemm_timings(loaded, decoder, prompt_positions))
        forget_texts(generator)
        prepared.append(first_chunk_seconds(generator, job))

    # The panel prepares the words as they stand too (after a pause in the typing), and another take of
    # the same words finds them: the guided row is prefilled before submit as well.
    text_prepared = []
    for source in sources[2 * PROMPT_REPEATS :]:
        job = GenerationRequest(**request, seconds=1.0, audio=source, audio_sample_rate=rate)
        generator.prepare_request(job)
        text_prepared.append(first_chunk_seconds(generator, job))

    encode_flops = encoder_flops(loaded, generator.prompt_for(prompted[0]).audio)
    bounds = [prompt_bounds(loaded, decoder, prompt_positions, encode_flops, timings)
              for timings in unprepared_timings + prepared_timings]
    # The reported bound: the median unprepared sample's figures (by the GEMM rate), the prepared bound the
    # median of the prepared samples' own; each sample's bound in *_bound_samples
    bound = sorted(bounds[:PROMPT_REPEATS], key=lambda figures: figures["gemm_gflop_per_second"])[PROMPT_REPEATS // 2]
    prepared_bounds = [figures["prepared_prompt_bound_seconds"] for figures in bounds[PROMPT_REPEATS:]]
    bound = {**bound,
             "prepared_prompt_bound_seconds": statistics.median(prepared_bounds),
             "audio_prompt_bound_samples": [figures["audio_prompt_bound_seconds"] for figures in bounds[:PROMPT_REPEATS]],
             "prepared_prompt_bound_samples": prepared_bounds,
             "gemm_gflop_per_second_samples": [figures["gemm_gflop_per_second"] for figures in bounds]}
    return {
        "steps_per_second": steady_steps_per_second(stamps),
        "realtime_factor": result.takes[0].audio.shape[0] / rate / total,
        "first_chunk_seconds": first_chunk[0] - started_text,
        "first_chunk_audio_prompt_seconds": statistics.median(seconds for seconds, _ in unprepared),
        "first_chunk_audio_prompt_samples": [seconds for seconds, _ in unprepared],
        "first_chunk_prepared_prompt_seconds": statistics.median(seconds for seconds, _ in prepared),
        "first_chunk_prepared_prompt_samples": [seconds for seconds, _ in prepared],
        "steps_to_first_chunk": unprepared[0][1],
        "prepare_seconds": statistics.median(prepare_seconds),
        "first_chunk_text_prepared_prompt_seconds": statistics.median(seconds for seconds, _ in text_prepared),
        "first_chunk_text_prepared_prompt_samples": [seconds for seconds, _ in text_prepared],
        # nothing but the steps (and the chunk's decode, left out) remains: main() adds their bound
        "text_prepared_prompt_bound_seconds": 0.0,
        "text_prepared_prompt_bound_samples": [0.0] * len(text_prepared),
        "steps": len(stamps),
        "precision": result.precision,
        "kernel": generator.kernel or result.kernel,
        "weight_bytes_per_step": decoder.weight_bytes,
        "cpu_ms_per_step": cpu_ms_per_step,
        "steps_per_second_chunks_beside": chunk_ways[True],
        "steps_per_second_chunks_between": chunk_ways[False],
        "step_breakdown_ms": step_breakdown_ms(
            generator, GenerationRequest(**request, seconds=min(seconds, BREAKDOWN_SECONDS))
        ),
        **bound,
        **audio_prompt_breakdown(generator, decoder, prompted[0]),
    }


def forget_texts(generator) -> None:
    """Drop the text encoder's kept states (a --baseline tree may keep none): the words are new to the job."""
    getattr(generator, "texts", {}).clear()


def first_chunk_seconds(generator, request) -> tuple[float, int]:
    """Seconds from submitting `request` to its first decoded audio chunk, and the decoder steps before it."""
    steps_done = [0]
    first_chunk: list[tuple[float, int]] = []  # (when, steps done by then)

    def on_chunk(start, audio) -> None:
        if not first_chunk:
            first_chunk.append((time.perf_counter(), steps_done[0]))

    started = time.perf_counter()
    generator.generate(request, on_chunk=on_chunk, on_progress=lambda done, total, eta: steps_done.__setitem__(0, done))
    return first_chunk[0][0] - started, first_chunk[0][1]


def audio_prompt_breakdown(generator, decoder, request) -> dict:
    """Where an unprepared audio prompt's first chunk goes, each part timed on its own (warm)."""
    import torch

    from bridge.engine.musicgen.codec import encode_audio
    from bridge.engine.musicgen.prefill import prefill_by_row
    from bridge.engine.musicgen.sampling import build_sequence, encode_text

    loaded = generator.loaded
    prepared = generator.prompt_for(request)
    started = time.perf_counter()
    codes = encode_audio(loaded, prepared.audio)
    encode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    conditioning = encode_text(loaded, request.prompt, 1, True)
    text_seconds = time.perf_counter() - started
    sequence, _, position = build_sequence(loaded, codes[None], 1, 1)
    session = decoder.start(conditioning.hidden_states, conditioning.attention_mask, 1, 2, sequence.shape[-1])
    started = time.perf_counter()
    with torch.inference_mode():
        prefill_by_row(session, conditioning, sequence[:, :, :position])
    return {"encode_seconds": encode_seconds, "text_seconds": text_seconds,
            "prefill_seconds": time.perf_counter() - started}


def gemm_timings(loaded, decoder, positions: int) -> dict:
    """One decoder layer's linears timed now at a prompt's shapes (best of BOUND_REPEATS), with this
    mode's kernel and with fp32, the faster taken: `both` (both guidance rows, the cross-attention's
    linears on the guided row only), `guided` (the guided row alone) seconds, and `rate`, the FLOP/s
    of `both`. Taken right before each first-chunk sample: this host's speed moved by up to 1.5x within
    a run, so a bound timed minutes away from its sample said more about the host than the engine."""
    import torch

    from bridge.engine.musicgen.fast_decoder import FastDecoder

    hidden = decoder.hidden_size

    def products(layer, rows: int, guided_rows: int) -> tuple[float, float]:
        """(best seconds, FLOPs) of one layer's linears at `rows` rows, `guided_rows` of them guided."""
        x, guided = torch.randn(rows, hidden), torch.randn(guided_rows, hidden)

        def run() -> None:
            layer.qkv(x), layer.self_out(x)
            if layer.cross_q is not None:  # MusicGen-Melody's layers have no cross-attention
                layer.cross_q(guided), layer.cross_out(guided)
            layer.fc2(layer.fc1(x))

        with torch.inference_mode():
            run()  # warm-up
            best = float("inf")
            for _ in range(BOUND_REPEATS):
                started = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - started)
        width = {"qkv": 3 * hidden, "self_out": hidden, "fc1": 4 * hidden, "fc2": 4 * hidden}
        flops = 2 * rows * hidden * sum(width.values())
        if layer.cross_q is not None:
            flops += 2 * guided_rows * hidden * 2 * hidden
        return best, flops

    dense = FastDecoder(loaded, "native").layers[0]
    dense_both, both_flops = products(dense, 2 * positions, positions)
    both = min(products(decoder.layers[0], 2 * positions, positions)[0], dense_both)
    guided = min(products(decoder.layers[0], positions, positions)[0], products(dense, positions, positions)[0])
    return {"both": both, "guided": guided, "rate": both_flops / both}


def prompt_bounds(loaded, decoder, positions: int, encode_flops: float, timings: dict) -> dict:
    """The least arithmetic time of an audio prompt's first chunk here: its FLOPs at the fastest GEMM
    measured on its own shapes (`timings`, from gemm_timings).

    - prefill_bound_seconds: the prefill's matrix products for both guidance rows: the layers'
      linears as timed on the first decoder layer, scaled to every layer but the last, of which only
      the keys and values are needed at every position (its qkv products at that rate); plus causal
      self-attention's two products per row (2 x hidden x P(P+1) FLOPs per layer, the last layer's
      left out) at that rate;
    - encode_bound_seconds: EnCodec's encoder (convolutions, LSTM, residual VQ) FLOPs (encoder_flops)
      at that rate;
    - audio_prompt_bound_seconds: both, the bound of an unprepared prompt;
    - prepared_prompt_bound_seconds: the guided row's products alone, all a prepared prompt leaves.
    main() adds the decoder steps up to the first chunk at the bandwidth bound (their weights' bytes)
    to the last two. The text encoder, the cross-attention to the text, norms and the first chunk's
    decode are left out, so the real first chunk cannot beat these.
    """
    hidden, layers, rate = decoder.hidden_size, len(decoder.layers), timings["rate"]
    both_flops = timings["both"] * rate
    # The last layer's keys and values are all a prefill needs of it beyond the last position (the
    # session runs the rest of that layer for one position): its qkv products, at every position
    last_layer_flops = 2 * positions * hidden * 3 * hidden  # one row's
    attention_flops = 2 * hidden * positions * (positions + 1) * (layers - 1)  # one row's, every layer but the last
    encode_bound = encode_flops / rate
    prefill_bound = timings["both"] * (layers - 1) + 2 * (last_layer_flops + attention_flops) / rate
    return {
        "prefill_bound_seconds": prefill_bound,
        "encode_bound_seconds": encode_bound,
        "audio_prompt_bound_seconds": encode_bound + prefill_bound,
        "prepared_prompt_bound_seconds": timings["guided"] * (layers - 1) + (last_layer_flops + attention_flops) / rate,
        "encoder_gflop": encode_flops / 1e9,
        "prefill_gflop": (both_flops * (layers - 1) + 2 * (last_layer_flops + attention_flops)) / 1e9,
        "attention_gflop": 2 * attention_flops / 1e9,
        "gemm_gflop_per_second": rate / 1e9,
    }


def encoder_flops(loaded, prompt_audio) -> float:
    """Multiply-adds x 2 of EnCodec's encoder and residual VQ on `prompt_audio`, counted from the shapes
    transformers' encoder runs (hooks on its convolutions and LSTM)."""
    import numpy as np
    import torch

    codec = loaded.model.audio_encoder
    counted = [0.0]

    def conv(module, inputs, output) -> None:
        per_output = module.in_channels // module.groups * module.kernel_size[0]
        counted[0] += 2.0 * output.numel() * per_output

    def lstm(module, inputs, output) -> None:
        steps_by_batch = inputs[0].shape[0] * inputs[0].shape[1]
        size, width = module.hidden_size, module.input_size
        for layer in range(module.num_layers):
            counted[0] += 2.0 * steps_by_batch * 4 * size * ((width if layer == 0 else size) + size)

    hooks = [module.register_forward_hook(conv) for module in codec.encoder.modules() if isinstance(module, torch.nn.Conv1d)]
    hooks += [module.register_forward_hook(lstm) for module in codec.encoder.modules() if isinstance(module, torch.nn.LSTM)]
    waveform = torch.from_numpy(np.ascontiguousarray(np.asarray(prompt_audio, dtype=np.float32).T))
    try:
        with torch.inference_mode():
            for channel in waveform:  # each channel through the mono codec, as encode_audio does
                frames = codec.encoder(channel[None, None]).shape[-1]
    finally:
        for hook in hooks:
            hook.remove()
    config = codec.config
    codebooks = loaded.num_codebooks  # over all channels
    return counted[0] + 2.0 * codebooks * frames * config.codebook_size * config.codebook_dim


def bytes_per_step(loaded) -> int:
    """fp32 bytes of the decoder's matrices: what transformers and exact mode read per step."""
    from bridge.engine.musicgen.fast_decoder import FastDecoder

    return FastDecoder(loaded, "native").weight_bytes


def worker(mode: str, seconds: float, device: str, model: str = MODEL) -> None:
    """One mode in this (fresh) process; prints one JSON line."""
    import torch

    from bridge.engine.musicgen.loading import load_model
    from bridge.engine.musicgen.reference import load_reference_model

    loaded = load_reference_model(model, device) if mode == "transformers" else load_model(model, device)
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    figures = RUNNERS[mode](loaded, seconds)
    if loaded.device.type == "cuda":
        figures["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    figures.update(
        mode=mode,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        weight_bytes=weight_bytes,
        threads=torch.get_num_threads(),
    )
    print(json.dumps(figures))


def read_bandwidth_bytes_per_second(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth as the engine's threads see it: summing a buffer far larger than any cache."""
    import torch

    buffer = torch.ones(megabytes * 2**20 // 4)
    buffer.sum()  # fault the pages in
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - started)
    return buffer.numel() * 4 / best


def cpu_flags() -> str:
    from bridge.engine.cpu_kernels import cpu_identity

    identity = cpu_identity()
    caps = " ".join(f"{name}={value}" for name, value in identity.caps)
    return " ".join(identity.flags) + (f" (capped: {caps})" if caps else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the timed clip (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    parser.add_argument("--modes", default=",".join(RUNNERS), help=f"comma-separated subset of {','.join(RUNNERS)}")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--model", default=MODEL, help=f"a built-in random architecture (default {MODEL})")
    parser.add_argument("--family", choices=("musicgen", "stable-audio"), action="append",
                        help="add stable-audio to time it in the same run after MusicGen (bench/stable_audio_speed.py)")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also run each Segue mode from another checkout of Segue (e.g. `git archive` of an older "
                             "commit), just before this tree's, as MODE@baseline: before/after in the same run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seconds, args.device, args.model)
        return 0

    from bridge.engine.musicgen.loading import load_model

    load_model(args.model, "cpu")  # build and cache small-random once, outside the timed processes
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    bandwidth = read_bandwidth_bytes_per_second()
    # Every mode runs in the environment Segue's engine worker starts with (OpenMP threads sleep when
    # idle, big buffers on huge pages); values set by the caller win, e.g. THP_MEM_ALLOC_ENABLE=0.
    env = {**WORKER_ENVIRONMENT, **os.environ}
    runs = []  # (label, checkout, mode)
    for mode in args.modes.split(","):
        if args.baseline and mode.startswith("segue"):
            runs.append((f"{mode}@baseline", args.baseline.resolve(), mode))
        runs.append((mode, ROOT, mode))
    results = {}
    for label, tree, mode in runs:
        print(f"running {label} ...", file=sys.stderr, flush=True)
        load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        done = subprocess.run(
            [sys.executable, str(tree / "bench" / "engine_speed.py"), "--worker", mode, "--seconds", str(args.seconds),
             "--device", args.device, "--model", args.model],
            capture_output=True, text=True, check=False, env={**env, "PYTHONPATH": str(tree)}, cwd=tree,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{label} failed")
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        results[label]["load_average_at_start"] = load_at_start

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.model} architecture (random weights), guidance 3, batch 1, {args.seconds:g} s clip")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {args.device}; load average {load_before:.2f} before, "
          f"{load:.2f} after ({', '.join(f'{name}={env[name]}' for name in WORKER_ENVIRONMENT)})")
    print(f"CPU flags: {cpu_flags()}; PyTorch capability: {torch_capability()}")
    print(f"memory read bandwidth: {bandwidth / 1e9:.1f} GB/s")
    header = (f"{'mode':<22}{'steps/s':>9}{'CPU ms/step':>12}{'x realtime':>12}{'1st chunk':>11}"
              f"{'1st chunk 8s-prompt':>21}{'peak RSS':>10}{'load':>6}")
    print(header)
    base = results.get("transformers", {}).get("steps_per_second")
    for mode, figures in results.items():
        prompted = figures["first_chunk_audio_prompt_seconds"]
        cpu_ms = figures.get("cpu_ms_per_step")
        print(
            f"{mode:<22}{figures['steps_per_second']:>9.1f}{(f'{cpu_ms:.1f}' if cpu_ms else '-'):>12}"
            f"{figures['realtime_factor']:>12.2f}"
            f"{figures['first_chunk_seconds']:>10.2f}s{(f'{prompted:.2f}s' if prompted else '-'):>21}"
            f"{figures['peak_rss_bytes'] / 2**30:>7.2f}GiB{figures['load_average_at_start']:>6.1f}"
        )
    weights = next(iter(results.values()))["weight_bytes"]
    print(f"fp32 weights: {weights / 2**30:.2f} GiB (+25% = {1.25 * weights / 2**30:.2f} GiB)")
    print(f"\n{'mode':<22}{'kernel':>20}{'MB read/step':>14}{'bound steps/s':>15}{'fraction':>10}")
    for mode, figures in results.items():
        bound = bandwidth / figures["weight_bytes_per_step"]
        figures["bandwidth_bound_steps_per_second"] = bound
        figures["fraction_of_bandwidth_limit"] = figures["steps_per_second"] / bound
        print(f"{mode:<22}{figures['kernel'].split(' ')[0]:>20}{figures['weight_bytes_per_step'] / 1e6:>14.0f}"
              f"{bound:>15.1f}{figures['fraction_of_bandwidth_limit']:>10.2f}")
    print_breakdowns(results, bandwidth)
    for mode, figures in results.items():
        if figures.get("steps_per_second_chunks_between"):
            print(f"{mode}: {figures['steps_per_second_chunks_beside']:.1f} steps/s with audio chunks decoded on their "
                  f"own thread, {figures['steps_per_second_chunks_between']:.1f} with each decoded between two steps")
    fast = results.get("segue-fast")
    if fast:
        # No first chunk before its decoder steps, each reading the weights once: add them at the bandwidth bound.
        steps_bound = fast["steps_to_first_chunk"] * fast["weight_bytes_per_step"] / bandwidth
        fast["first_chunk_steps_bound_seconds"] = steps_bound
        for kind in ("audio", "prepared", "text_prepared"):
            fast[f"{kind}_prompt_bound_seconds"] += steps_bound
            fast[f"{kind}_prompt_bound_samples"] = [bound + steps_bound for bound in fast[f"{kind}_prompt_bound_samples"]]
            # each sample against the bound timed right before it; the median of those ratios
            fast[f"first_chunk_{kind}_prompt_vs_bound_samples"] = [
                seconds / bound for seconds, bound in zip(fast[f"first_chunk_{kind}_prompt_samples"],
                                                          fast[f"{kind}_prompt_bound_samples"], strict=True)]
            fast[f"first_chunk_{kind}_prompt_vs_bound"] = statistics.median(fast[f"first_chunk_{kind}_prompt_vs_bound_samples"])
        print(f"fast mode's kernel here: {fast['kernel']}")

        def ratios(kind: str) -> str:
            return ", ".join(f"{ratio:.2f}" for ratio in fast[f"first_chunk_{kind}_prompt_vs_bound_samples"])

        def samples(kind: str) -> str:
            return ", ".join(f"{seconds:.2f}" for seconds in fast[f"first_chunk_{kind}_prompt_samples"])

        print(f"8 s audio prompt: first chunk {fast['first_chunk_audio_prompt_seconds']:.2f} s, median of {samples('audio')} "
              f"(EnCodec encode {fast['encode_seconds']:.2f} s, text {fast['text_seconds']:.2f} s, prefill "
              f"{fast['prefill_seconds']:.2f} s, then {fast['steps_to_first_chunk']} steps and the chunk); bound "
              f"{fast['audio_prompt_bound_seconds']:.2f} s = encode {fast['encode_bound_seconds']:.2f} s "
              f"({fast['encoder_gflop']:.0f} GFLOP) + prefill {fast['prefill_bound_seconds']:.2f} s "
              f"({fast['prefill_gflop']:.0f} GFLOP of products, {fast['attention_gflop']:.0f} of them attention's) at "
              f"{fast['gemm_gflop_per_second']:.0f} GFLOP/s + {fast['steps_to_first_chunk']} steps at the bandwidth "
              f"bound {fast['first_chunk_steps_bound_seconds']:.2f} s (the median sample's); each sample against the bound "
              f"timed right before it: {ratios('audio')}, median {fast['first_chunk_audio_prompt_vs_bound']:.2f}x")
        print(f"prepared ahead ({fast['prepare_seconds']:.2f} s before submit): first chunk "
              f"{fast['first_chunk_prepared_prompt_seconds']:.2f} s, median of {samples('prepared')}; bound "
              f"{fast['prepared_prompt_bound_seconds']:.2f} s (the guided row's products and the steps); each sample "
              f"against its own: {ratios('prepared')}, median {fast['first_chunk_prepared_prompt_vs_bound']:.2f}x")
        print(f"prepared with its words too: first chunk {fast['first_chunk_text_prepared_prompt_seconds']:.2f} s, "
              f"median of {samples('text_prepared')}; bound {fast['text_prepared_prompt_bound_seconds']:.2f} s (the steps): "
              f"{ratios('text_prepared')}, median {fast['first_chunk_text_prepared_prompt_vs_bound']:.2f}x")
    summary = {}
    if base and fast:
        summary["speedup_vs_transformers"] = round(fast["steps_per_second"] / base, 2)
    if fast:
        for key in ("fraction_of_bandwidth_limit", "first_chunk_audio_prompt_seconds", "prefill_bound_seconds",
                    "audio_prompt_bound_seconds", "first_chunk_audio_prompt_vs_bound", "first_chunk_prepared_prompt_seconds",
                    "prepared_prompt_bound_seconds", "first_chunk_prepared_prompt_vs_bound",
                    "first_chunk_text_prepared_prompt_seconds", "first_chunk_text_prepared_prompt_vs_bound", "kernel"):
            summary[key] = round(fast[key], 3) if isinstance(fast[key], float) else fast[key]
    summary.update(machine=cpu_model(), cpu_flags=cpu_flags(), device=args.device, load_average_before=round(load_before, 2),
                   load_average=round(load, 2), clip_seconds=args.seconds, read_bandwidth_gb_s=round(bandwidth / 1e9, 2))
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
