"""The precision a Stable Audio model's diffusion transformer (DiT) runs at, and why that is faithful.

`exact` runs the weights as loaded (fp32 on a CPU, fp16 on CUDA). `fast` (and `auto`) on a CPU with
native bf16 arithmetic (x86 AVX-512 BF16 or AMX, Arm's BF16 extension) runs the DiT's matrix products
in bf16 under autocast, about 2x faster per step (bench/stable_audio_speed.py); the text encoder, the
sampler's arithmetic and the autoencoder stay fp32. Without native bf16 the products would be
emulated (slower than fp32), so fast runs fp32 there.

Faithful means: a fast take differs from the exact take of the same seed by at most FAITHFUL_SEED_RATIO
of what a new seed changes (RMS of the final latents; the autoencoder that decodes them is the same in
both modes). A producer treats two seeds as two different takes; a change 50x smaller (34 dB under
it) leaves the same take. Measured at the real sizes (random weights, bench/stable_audio_speed.py): SA3 Small
(8 steps) bf16 0.0026 of a new seed, faithful; int8 DiT linears 0.024, not faithful, so not offered.
Stable Audio Open 1.0 (guidance 7, its SDE sampler) bf16 0.10 of a new seed: not faithful, so its
fast mode stays fp32 (the generator's BF16_FAITHFUL).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from bridge.engine.cpu_kernels import CpuIdentity

FAITHFUL_SEED_RATIO = 0.02
# x86: AVX-512 BF16 and AMX BF16; Arm: FEAT_BF16 ("bf16" in /proc/cpuinfo's features, hw.optional.arm.FEAT_BF16).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def resolve_quality(quality: str) -> str:
    """'auto' is 'fast'."""
    return "fast" if quality == "auto" else quality


def diffusion_precision(quality: str, device_type: str, loaded_precision: str, cpu: CpuIdentity | None) -> str:
    """The DiT's precision: 'bf16' for fast on a CPU with native bf16, else the weights' own (`loaded_precision`)."""
    if resolve_quality(quality) == "fast" and device_type == "cpu" and cpu is not None and cpu.has(*NATIVE_BF16_FLAGS):
        return "bf16"
    return loaded_precision


def describe_choice(
    quality: str, precision: str, device_type: str, cpu: CpuIdentity | None, bf16_faithful: bool = True
) -> str:
    """Why this precision, for the CLI's summary line (like MusicGen's measured kernel)."""
    if precision == "bf16":
        return "DiT in bf16 on " + "+".join(flag for flag in NATIVE_BF16_FLAGS if cpu is not None and cpu.has(flag))
    if resolve_quality(quality) == "fast" and device_type == "cpu":
        return "bf16 not faithful for this model" if not bf16_faithful else "no native bf16 on this CPU"
    return ""


@contextmanager
def dit_precision(transformer, precision: str) -> Iterator[None]:
    """Run `transformer` (a diffusers module) under bf16 autocast for the duration, when `precision` is 'bf16'."""
    if precision != "bf16":
        yield
        return
    import torch

    run_as_loaded: Callable = transformer.forward

    def forward_in_bf16(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = run_as_loaded(*args, **kwargs)
        # The sampler steps in fp32: hand it the prediction in fp32.
        return tuple(t.float() if torch.is_tensor(t) else t for t in output) if isinstance(output, tuple) else output

    transformer.forward = forward_in_bf16
    try:
        yield
    finally:
        del transformer.forward  # the class's own forward again


def seed_ratio(exact: np.ndarray, fast: np.ndarray, exact_other_seed: np.ndarray) -> float:
    """How far `fast` moved from `exact` (same seed), as a fraction of how far a new seed moves it."""
    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))

    return rms(fast - exact) / rms(exact_other_seed - exact)
