"""Fast mode for Stable Audio on a CPU: the diffusion transformer in bf16 where the CPU has native bf16,
fp32 otherwise and in exact mode; the choice is shown to the producer, and bf16 is held to the
faithfulness bound (a fast take moves at most 2% as far as a new seed does) on both tiny models."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from bridge.engine.cpu_kernels import CpuIdentity
from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.generator import StableAudioGenerator
from bridge.engine.stable_audio.loading import load_stable_audio
from bridge.engine.stable_audio.open_generator import StableAudioOpenGenerator
from bridge.engine.stable_audio.precision import (
    FAITHFUL_SEED_RATIO,
    describe_choice,
    diffusion_precision,
    dit_precision,
    seed_ratio,
)


def cpu(*flags: str, arch: str = "x86_64") -> CpuIdentity:
    return CpuIdentity(arch, "test cpu", flags, "2.13.0")


AVX512_BF16, AVX2_ONLY = cpu("avx2", "avx512f", "avx512_bf16"), cpu("avx2", "fma")


def test_fast_runs_bf16_only_on_a_cpu_with_native_bf16_and_exact_never():
    assert diffusion_precision("fast", "cpu", "fp32", AVX512_BF16) == "bf16"
    assert diffusion_precision("auto", "cpu", "fp32", cpu("avx512f", "amx_tile", "amx_bf16")) == "bf16"
    assert diffusion_precision("auto", "cpu", "fp32", cpu("asimd", "bf16", arch="aarch64")) == "bf16"
    assert diffusion_precision("fast", "cpu", "fp32", AVX2_ONLY) == "fp32"  # emulated bf16 would be slower
    assert diffusion_precision("exact", "cpu", "fp32", AVX512_BF16) == "fp32"
    assert diffusion_precision("fast", "cuda", "fp16", None) == "fp16"


def test_the_choice_is_named_for_the_summary_line():
    assert describe_choice("auto", "bf16", "cpu", AVX512_BF16) == "DiT in bf16 on avx512_bf16"
    assert describe_choice("fast", "fp32", "cpu", AVX2_ONLY) == "no native bf16 on this CPU"
    assert describe_choice("exact", "fp32", "cpu", AVX512_BF16) == ""


@pytest.fixture(scope="module")
def tiny_models(segue_cache_dir):
    # SA3 at its 8 steps; Stable Audio Open at 20 of its 100 (fewer steps are a harder test: each step's
    # rounding weighs more; 0.0099 at 100 steps, 0.0119 at 20, 0.0191 at 8 on the test machine).
    return {
        "tiny-stable-audio": (load_stable_audio("tiny-stable-audio", "cpu"), dict(duration=1.0), 8),
        "tiny-stable-audio-open": (load_stable_audio("tiny-stable-audio-open", "cpu"), dict(audio_end_in_s=1.0), 20),
    }


def final_latents(loaded, length: dict, steps: int, seed: int, precision: str) -> np.ndarray:
    pipeline = loaded.text_to_audio
    with dit_precision(pipeline.transformer, precision):
        return pipeline("deep house, rhodes chords", num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                        output_type="latent", **length).audios.float().numpy()


@pytest.fixture(scope="module")
def exact_takes(tiny_models):
    """Per model: the exact take's final latents for seed 1, and for seed 2 (a new take)."""
    return {model: tuple(final_latents(loaded, length, steps, seed, "fp32") for seed in (1, 2))
            for model, (loaded, length, steps) in tiny_models.items()}


@pytest.mark.parametrize("model", ["tiny-stable-audio", "tiny-stable-audio-open"])
def test_bf16_moves_a_take_far_less_than_a_new_seed(tiny_models, exact_takes, model):
    loaded, length, steps = tiny_models[model]
    exact, new_seed = exact_takes[model]
    fast = final_latents(loaded, length, steps, 1, "bf16")
    ratio = seed_ratio(exact, fast, new_seed)
    assert 0 < ratio <= FAITHFUL_SEED_RATIO, ratio  # bf16 did run (not 0) and stays faithful
    transformer = loaded.text_to_audio.transformer
    assert type(transformer).forward is transformer.forward.__func__  # restored afterwards


def test_the_bound_rejects_int8_linears_as_measured_at_full_size(tiny_models, exact_takes):
    loaded, length, steps = tiny_models["tiny-stable-audio-open"]
    exact, new_seed = exact_takes["tiny-stable-audio-open"]
    pipeline = loaded.text_to_audio
    as_loaded = pipeline.transformer
    pipeline.transformer = torch.ao.quantization.quantize_dynamic(copy.deepcopy(as_loaded), {torch.nn.Linear}, dtype=torch.qint8)
    try:
        int8 = final_latents(loaded, length, steps, 1, "fp32")
    finally:
        pipeline.transformer = as_loaded
    assert seed_ratio(exact, int8, new_seed) > FAITHFUL_SEED_RATIO


def test_a_fast_take_says_bf16_reproduces_and_exact_stays_fp32(tiny_models):
    generator = StableAudioGenerator(tiny_models["tiny-stable-audio"][0], cpu=AVX512_BF16)
    request = GenerationRequest(prompt="deep house", model="tiny-stable-audio", seconds=0.5, seed=3)
    fast = generator.generate(request)
    assert (fast.quality, fast.precision, fast.kernel) == ("fast", "bf16", "DiT in bf16 on avx512_bf16")
    np.testing.assert_array_equal(fast.takes[0].audio, generator.generate(request).takes[0].audio)
    exact = generator.generate(dataclasses.replace(request, quality="exact"))
    assert (exact.quality, exact.precision) == ("exact", "fp32")
    without_bf16 = StableAudioGenerator(tiny_models["tiny-stable-audio"][0], cpu=AVX2_ONLY).generate(request)
    assert (without_bf16.quality, without_bf16.precision, without_bf16.kernel) == ("fast", "fp32", "no native bf16 on this CPU")


def test_stable_audio_open_stays_fp32_in_fast_mode_where_bf16_was_measured_unfaithful(tiny_models):
    generator = StableAudioOpenGenerator(tiny_models["tiny-stable-audio-open"][0], steps=2, cpu=AVX512_BF16)
    result = generator.generate(GenerationRequest(prompt="x", model="tiny-stable-audio-open", seconds=0.5, seed=1))
    assert (result.quality, result.precision, result.kernel) == ("fast", "fp32", "bf16 not faithful for this model")
