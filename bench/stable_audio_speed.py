"""How fast does Stable Audio 3 run on this machine? (A benchmark, not a test.)

    python bench/stable_audio_speed.py [--seconds 8] [--size medium|small-estimate] [--modes fp32,bf16,int8] [--json]

Builds the Stable Audio 3 architecture with random weights (no download) and times an 8-second
clip, batch 1, the distilled sampler's 8 steps, in three parts: the text encoder, the diffusion
steps, and the autoencoder's decode. Sizes:
- medium: diffusers' StableAudio3DiTModel defaults, which are SA3 Medium's DiT (24 blocks, 1536 wide,
  differential attention, 64 memory tokens), the T5Gemma b-b encoder (12 layers, 768 wide, 256k
  vocabulary) and AutoencoderSAME's defaults;
- small-estimate: the Small models' config is not published where we could read it; this is a DiT
  1024 wide and 16 blocks deep, sized to their ~433M parameters (stated, not verified);
- open-1.0: Stable Audio Open 1.0 (diffusers' StableAudioDiTModel and AutoencoderOobleck defaults,
  T5-base's encoder, its CosineDPMSolverMultistepScheduler), guidance 7; it always diffuses its whole
  47.55 s window, so the clip's length changes only the decode.
Modes, each in a fresh process so peak memory is honest:
- fp32: the model's own weights;
- fp32-seed1: fp32 with another seed: how much a new take differs, the scale errors are held to;
- bf16: the engine's fast mode, the DiT under CPU autocast to bfloat16 (only where the CPU has
  avx512_bf16, AMX or Arm bf16);
- int8: the DiT's linear layers quantised dynamically to int8 (torch.ao quantize_dynamic).
Faithfulness: each mode's final latents against fp32's from the same seed (relative RMS error), and
that error as a fraction of a new seed's (the engine's bound: bridge/engine/stable_audio/precision.py).
The random weights make noise, so this says how far a mode moves the numbers, not how it sounds.
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

from bench.engine_speed import cpu_model  # noqa: E402 - after the path insert above
from bridge.engine.stable_audio.precision import FAITHFUL_SEED_RATIO, NATIVE_BF16_FLAGS  # noqa: E402
from bridge.engine.worker import WORKER_ENVIRONMENT  # noqa: E402  (imports no torch)

PROMPT = "deep house loop with warm rhodes chords and a rolling bassline, 124 BPM"
# fp32-seed1: fp32 with another seed, the scale of "a different take" that each mode's error is held to.
OTHER_SEED = "fp32-seed1"
MODES = ("fp32", OTHER_SEED, "bf16", "int8")
STEPS = 8
SIZES = {
    "medium": dict(transformer={}, vae={}),
    "small-estimate": dict(transformer=dict(embed_dim=1024, depth=16, num_heads=16), vae={}),
    # Stable Audio Open 1.0: diffusers' StableAudioDiTModel and AutoencoderOobleck defaults are its shapes.
    "open-1.0": dict(transformer={}, vae={}),
}
OPEN = "open-1.0"
OPEN_GUIDANCE = 7.0
# google-t5/t5-base's encoder, which Stable Audio Open uses.
T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
# google/t5gemma-b-b-ul2's encoder, which SA3 uses (diffusers' pipeline docs).
TEXT_ENCODER = dict(
    vocab_size=256000, hidden_size=768, intermediate_size=2304, num_hidden_layers=12, num_attention_heads=12,
    num_key_value_heads=12, head_dim=64, max_position_embeddings=512, sliding_window=512,
    layer_types=["full_attention"] * 12,
)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def build_pipeline(size: str):
    import torch
    from diffusers import (
        AutoencoderSAME,
        FlowMatchEulerDiscreteScheduler,
        StableAudio3DiTModel,
        StableAudio3Pipeline,
    )
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
    from transformers import T5GemmaConfig, T5GemmaEncoderModel
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    from bridge.engine.stable_audio.random_models import tiny_gemma_tokenizer

    torch.manual_seed(0)
    module = T5GemmaModuleConfig(**TEXT_ENCODER).to_dict()
    text_encoder = T5GemmaEncoderModel(T5GemmaConfig(encoder=module, decoder=module, is_encoder_decoder=False))
    spec = SIZES[size]
    pipeline = StableAudio3Pipeline(
        vae=AutoencoderSAME(**spec["vae"]),
        text_encoder=text_encoder,
        tokenizer=tiny_gemma_tokenizer(),  # character-level: a few more tokens than Gemma's, a tiny cost
        duration_embedder=StableAudio3DurationEmbedder(),
        transformer=StableAudio3DiTModel(**spec["transformer"]),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0, stochastic_sampling=True),
    ).to("cpu")
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def build_open_pipeline():
    import torch
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
    )
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel

    from bridge.engine.stable_audio.open_random_model import tiny_t5_tokenizer

    torch.manual_seed(0)
    pipeline = StableAudioPipeline(
        vae=AutoencoderOobleck(),
        text_encoder=T5EncoderModel(T5Config(**T5_BASE)),
        projection_model=StableAudioProjectionModel(text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512),
        tokenizer=tiny_t5_tokenizer(),  # character-level, 64 tokens (T5's: 128)
        transformer=StableAudioDiTModel(),
        scheduler=CosineDPMSolverMultistepScheduler(),  # the checkpoint's sampler (needs torchsde)
    ).to("cpu")
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def worker(mode: str, size: str, seconds: float, reference: str | None) -> None:
    import math

    import numpy as np
    import torch

    from bridge.engine.stable_audio.open_generator import DECODE_CONTEXT_FRAMES
    from bridge.engine.stable_audio.precision import dit_precision

    pipeline = build_open_pipeline() if size == OPEN else build_pipeline(size)
    parameters = {name: sum(p.numel() for p in getattr(pipeline, name).parameters())
                  for name in ("text_encoder", "transformer", "vae")}  # counted before int8 packs the weights
    if mode == "int8":
        pipeline.transformer = torch.ao.quantization.quantize_dynamic(
            pipeline.transformer, {torch.nn.Linear}, dtype=torch.qint8
        )
    # bf16: the engine's own fast mode (the DiT under bf16 autocast, the sampler and the decode in fp32).
    precision = "bf16" if mode == "bf16" else "fp32"
    seed = 1 if mode == OTHER_SEED else 0

    def run() -> tuple[dict, torch.Tensor]:
        stamps = []
        with torch.inference_mode():
            started = time.perf_counter()
            if size == OPEN:  # as the engine runs it: the whole window diffused, the clip's frames decoded
                pipeline.encode_prompt(PROMPT, torch.device("cpu"), True)
                encoded = time.perf_counter()
                with dit_precision(pipeline.transformer, precision):
                    latents = pipeline(
                        PROMPT, audio_end_in_s=seconds, num_inference_steps=STEPS, guidance_scale=OPEN_GUIDANCE,
                        generator=torch.Generator().manual_seed(seed), output_type="latent",
                        callback=lambda step, t, tensors: stamps.append(time.perf_counter()),
                    ).audios.float()
                frames = math.ceil(seconds * pipeline.vae.config.sampling_rate / pipeline.vae.hop_length)
                decoded_latents = latents[..., : frames + DECODE_CONTEXT_FRAMES]
            else:
                embeds, mask = pipeline.encode_prompt(PROMPT, torch.device("cpu"), 1)
                encoded = time.perf_counter()
                with dit_precision(pipeline.transformer, precision):
                    latents = pipeline(
                        prompt_embeds=embeds, encoder_attention_mask=mask, duration=seconds, num_inference_steps=STEPS,
                        generator=torch.Generator().manual_seed(seed), output_type="latent",
                        callback_on_step_end=lambda pipe, step, t, tensors: stamps.append(time.perf_counter()) or tensors,
                    ).audios.float()
                decoded_latents = latents
            diffused = time.perf_counter()
            pipeline.vae.decode(decoded_latents)
            decoded = time.perf_counter()
        total = decoded - started
        return {
            "text_encoder_seconds": encoded - started,
            "diffusion_seconds": diffused - encoded,
            "seconds_per_step": (stamps[-1] - stamps[0]) / (len(stamps) - 1),
            "decode_seconds": decoded - diffused,
            "total_seconds": total,
            "realtime_factor": seconds / total,
        }, latents

    if mode != OTHER_SEED and size != OPEN:  # Open's steps take minutes here: the per-step time skips the first
        run()  # warm-up (allocations, oneDNN kernel selection); the other seed only gives the latents
    figures, latents = run()
    if reference:
        np.save(Path(reference).with_suffix(f".{mode}.npy"), latents.numpy())
    figures.update(mode=mode, parameters=parameters, threads=torch.get_num_threads(),
                   peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(figures))


def relative_error(reference: Path, mode: str) -> float | None:
    import numpy as np

    base, other = reference.with_suffix(".fp32.npy"), reference.with_suffix(f".{mode}.npy")
    if not (base.is_file() and other.is_file()):
        return None
    a, b = np.load(base), np.load(other)
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(a**2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the timed clip (default 8)")
    parser.add_argument("--size", choices=tuple(SIZES), default="medium")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.size, args.seconds, args.reference)
        return 0

    flags = cpu_flags()
    has_bf16 = bool(set(NATIVE_BF16_FLAGS) & flags)
    modes = [mode for mode in args.modes.split(",") if mode != "bf16" or has_bf16]
    env = {**WORKER_ENVIRONMENT, **os.environ}
    reference = Path(os.environ.get("TMPDIR", "/tmp")) / f"segue-sa-bench-{os.getpid()}"
    results = {}
    for mode in modes:
        print(f"running stable audio {args.size} {mode} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--worker", mode, "--size", args.size, "--seconds", str(args.seconds),
             "--reference", str(reference)],
            capture_output=True, text=True, check=False, env=env,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        results[mode]["relative_error_vs_fp32"] = relative_error(reference, mode)
    for path in reference.parent.glob(f"{reference.name}.*.npy"):
        path.unlink()
    new_seed_error = results.get(OTHER_SEED, {}).get("relative_error_vs_fp32")
    for figures in results.values():
        error = figures["relative_error_vs_fp32"]
        figures["error_vs_new_seed"] = error / new_seed_error if error is not None and new_seed_error else None

    load = os.getloadavg()
    shown_flags = " ".join(sorted(flag for flag in flags if flag.startswith(("avx512", "amx", "avx2"))))
    first = next(iter(results.values()))
    family = "Stable Audio Open" if args.size == OPEN else "Stable Audio 3"
    print(f"\n{family} {args.size} (random weights), {STEPS} steps, batch 1, {args.seconds:g} s clip; "
          f"parameters: " + ", ".join(f"{name} {count / 1e6:.0f}M" for name, count in first["parameters"].items()))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {first['threads']} threads; flags: {shown_flags}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'mode':<11}{'text enc':>10}{'diffusion':>11}{'s/step':>8}{'decode':>9}{'total':>9}{'x realtime':>12}"
          f"{'rel. error':>12}{'vs new seed':>13}{'peak RSS':>10}")
    for mode, figures in results.items():
        error, ratio = figures["relative_error_vs_fp32"], figures["error_vs_new_seed"]
        verdict = "" if ratio is None or mode in ("fp32", OTHER_SEED) else (" faithful" if ratio <= FAITHFUL_SEED_RATIO else " NOT faithful")
        print(f"{mode:<11}{figures['text_encoder_seconds']:>9.2f}s{figures['diffusion_seconds']:>10.2f}s"
              f"{figures['seconds_per_step']:>7.2f}s{figures['decode_seconds']:>8.2f}s{figures['total_seconds']:>8.2f}s"
              f"{figures['realtime_factor']:>12.2f}{(f'{error:.4f}' if error is not None else '-'):>12}"
              f"{(f'{ratio:.4f}' if ratio is not None else '-'):>13}{figures['peak_rss_bytes'] / 2**30:>7.2f}GiB{verdict}")
    print(f"faithful: at most {FAITHFUL_SEED_RATIO:g} of a new seed's change (bridge/engine/stable_audio/precision.py)")
    if args.json:
        summary = dict(family="stable-audio", size=args.size, machine=cpu_model(), cpu_flags=shown_flags,
                       load_average=[round(value, 2) for value in load], clip_seconds=args.seconds)
        summary.update({mode: {key: (round(value, 4) if isinstance(value, float) else value)
                               for key, value in figures.items()} for mode, figures in results.items()})
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
