"""The fast decoder: exact mode gives the reference loop's codes; fast (int8) mode stays close to fp32."""

import tempfile

import numpy as np
import pytest
import torch

from bridge.engine.musicgen.fast_decoder import FastDecoder, one_query_attention
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.musicgen.graphed_step import GraphedStep
from bridge.engine.musicgen.loading import LoadedModel, load_model
from bridge.engine.musicgen.quality import graphed_for, precision_for
from bridge.engine.musicgen.quantize import Int8Linear
from bridge.engine.musicgen.random_models import build_random_musicgen
from bridge.engine.musicgen.resident_memory import drop_resident_pages
from bridge.engine.musicgen.sampling import SamplingParams, encode_text, sample_codes
from bridge.engine.request import GenerationRequest

GREEDY = SamplingParams(greedy=True, cfg=3.0)


def prompt_codes(loaded, frames: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (1, loaded.num_codebooks, frames), generator=generator)


@pytest.mark.parametrize("cfg", [3.0, 1.0])
@pytest.mark.parametrize("prompt_frames", [0, 30])
def test_exact_mode_gives_the_reference_loops_greedy_codes(tiny_model, tiny_reference_model, cfg, prompt_frames):
    params = SamplingParams(greedy=True, cfg=cfg)
    conditioning = encode_text(tiny_model, "dusty funk drums", 1, params.guided)
    prompt = prompt_codes(tiny_model, prompt_frames) if prompt_frames else None
    reference = sample_codes(tiny_reference_model, conditioning, prompt, 80, params)
    fast = sample_codes(tiny_model, conditioning, prompt, 80, params, decoder=FastDecoder(tiny_model, "native"))
    torch.testing.assert_close(fast, reference, rtol=0, atol=0)
    assert len(torch.unique(reference)) > 20, "greedy codes must vary, or equality proves little"


def test_exact_mode_stereo_with_two_takes(tiny_stereo_model, tiny_stereo_reference_model):
    conditioning = encode_text(tiny_stereo_model, "wide pads", 2, True)
    prompt = prompt_codes(tiny_stereo_model, 12).expand(2, -1, -1)
    reference = sample_codes(tiny_stereo_reference_model, conditioning, prompt, 40, GREEDY)
    fast = sample_codes(tiny_stereo_model, conditioning, prompt, 40, GREEDY, decoder=FastDecoder(tiny_stereo_model))
    torch.testing.assert_close(fast, reference, rtol=0, atol=0)


def test_fixed_shape_step_for_cuda_graphs_matches_the_sliced_step(tiny_model):
    """The step a CUDA graph captures (masked cache, position as data) runs eagerly on a CPU."""
    conditioning = encode_text(tiny_model, "house", 1, True)
    prompt = prompt_codes(tiny_model, 20)
    reference = sample_codes(tiny_model, conditioning, prompt, 60, GREEDY, decoder=FastDecoder(tiny_model))
    graphed_decoder = FastDecoder(tiny_model, graphed=True)
    assert isinstance(graphed_decoder.start(conditioning.hidden_states, conditioning.attention_mask, 1, 2, 8), GraphedStep)
    graphed = sample_codes(tiny_model, conditioning, prompt, 60, GREEDY, decoder=graphed_decoder)
    torch.testing.assert_close(graphed, reference, rtol=0, atol=0)


def test_quality_modes_map_to_decoders_per_device():
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert [precision_for(quality, cpu) for quality in ("auto", "fast", "exact")] == ["int8", "int8", "native"]
    assert {precision_for(quality, device) for quality in ("fast", "exact") for device in (cuda, mps)} == {"native"}
    assert graphed_for("auto", cuda) and not graphed_for("exact", cuda)
    assert not graphed_for("fast", mps) and not graphed_for("fast", cpu)


def test_quality_mode_is_chosen_per_request_and_recorded(tiny_model):
    generator = MusicGenerator(tiny_model)
    request = dict(prompt="lo-fi", model="tiny", seconds=0.5, seed=3)
    exact = generator.generate(GenerationRequest(**request, quality="exact"))
    fast = generator.generate(GenerationRequest(**request))  # auto: fast
    assert (exact.quality, exact.precision) == ("exact", "fp32")
    assert (fast.quality, fast.precision) == ("fast", "int8")
    assert exact.takes[0].audio.shape == fast.takes[0].audio.shape


def test_exact_path_is_unchanged_after_fp32_pages_are_dropped(tiny_model):
    """Quantising lets the OS drop the checkpoint's fp32 pages; they must read back as the same weights."""
    weight = tiny_model.model.decoder.model.decoder.layers[0].fc1.weight
    before = weight.detach().clone()
    conditioning = encode_text(tiny_model, "techno", 1, True)
    reference = sample_codes(tiny_model, conditioning, None, 40, GREEDY, decoder=FastDecoder(tiny_model, "native"))
    FastDecoder(tiny_model, "int8")
    drop_resident_pages([weight.detach()])
    torch.testing.assert_close(weight.detach(), before, rtol=0, atol=0)
    exact = sample_codes(tiny_model, conditioning, None, 40, GREEDY, decoder=FastDecoder(tiny_model, "native"))
    torch.testing.assert_close(exact, reference, rtol=0, atol=0)


# ---------------------------------------------------------------- faithfulness of int8


def sharpened_model(architecture: str, head_scale: float) -> LoadedModel:
    """A random model whose next-step distributions are peaked like a trained one's.

    Random init gives near-uniform distributions (entropy near log 2048 = 7.6 nats), whose KL
    divergence is near zero for any error; scaling the codebook heads brings the entropy down to a
    few nats, where a rounding error in any layer shows in the distributions.
    """
    loaded = load_random_model(architecture, seed=4)
    with torch.no_grad():
        for head in loaded.model.decoder.lm_heads:
            # A new tensor, not the mapped checkpoint's pages changed in place: quantising drops those
            # pages (drop_resident_pages), and a changed private page would read back as the file's.
            head.weight = torch.nn.Parameter(head.weight * head_scale, requires_grad=False)
    return loaded


def load_random_model(architecture: str, seed: int) -> LoadedModel:
    """A random model of `architecture` built with `seed`, saved and loaded as a checkpoint is."""
    model, processor = build_random_musicgen(architecture, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
        return load_model(folder, "cpu")  # the weights stay mapped after the folder is gone (Linux)


def coarsen_to_4_bits(decoder: FastDecoder) -> None:
    """A deliberately broken quantisation (16 levels instead of 255) that the bound must catch."""
    for part in [decoder.lm_heads] + [getattr(layer, name) for layer in decoder.layers for name in ("qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2")]:
        part.weight = (torch.round(part.weight.float() / 17) * 17).clamp(-127, 127).to(torch.int8)


# Every kernel's teacher-forced KL bound: tests/test_engine_kernels.py.


def test_int8_linear_error_is_weight_rounding_only():
    torch.manual_seed(1)
    weight = torch.randn(96, 64) * 0.05
    x = torch.randn(3, 64)
    layer = Int8Linear(weight)
    exact = x @ layer.dequantized().T  # what the int8 weights mean
    np.testing.assert_allclose(layer(x).numpy(), exact.numpy(), rtol=0.02, atol=0.02 * float(exact.abs().max()))
    assert float((layer.dequantized() - weight).abs().max()) <= float(weight.abs().amax(1).max()) / 127 / 2 * 1.01
    many_rows = torch.randn(40, 64)  # a prefill: the widened-weights path
    np.testing.assert_allclose(
        layer(many_rows).numpy(), (many_rows @ layer.dequantized().T).numpy(), rtol=0.02, atol=0.05
    )


def test_fast_modes_one_query_attention_is_sdpas_over_a_growing_cache():
    """Fast mode attends with two matmuls (faster than SDPA's CPU kernel for one query); same maths."""
    torch.manual_seed(2)
    cache = torch.randn(2, 2, 4, 300, 16)  # (keys/values, rows, heads, window, head dim)
    query = torch.randn(2, 4, 1, 16)
    for filled in (1, 37, 300):
        keys, values = cache[0, :, :, :filled], cache[1, :, :, :filled]
        expected = torch.nn.functional.scaled_dot_product_attention(query, keys, values)
        torch.testing.assert_close(one_query_attention(query, keys, values), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision", ["native", "int8"])
def test_a_prefills_last_layer_runs_past_its_keys_and_values_for_the_last_position_alone(
    tiny_model, precision, monkeypatch
):
    from bridge.engine.musicgen import fast_decoder

    decoder = FastDecoder(tiny_model, precision)
    conditioning = encode_text(tiny_model, "dusty funk drums", 1, True)
    codes = prompt_codes(tiny_model, 40).repeat(2, 1, 1)  # guided and unguided rows
    seen: list[tuple[object, int]] = []  # (linear, positions it ran on)
    linear_around = fast_decoder.linear_around
    monkeypatch.setattr(fast_decoder, "linear_around",
                        lambda linear, x, **kwargs: seen.append((linear, x.shape[1])) or linear_around(linear, x, **kwargs))

    trimmed = decoder.start(conditioning.hidden_states, conditioning.attention_mask, 1, 2, 40)
    with torch.inference_mode():
        last_logits = trimmed(codes)
    last_layer = decoder.layers[-1]
    positions = {name: [count for linear, count in seen if linear is getattr(last_layer, name)]
                 for name in ("qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2")}
    assert positions == {"qkv": [40], "self_out": [1], "cross_q": [1], "cross_out": [1], "fc1": [1], "fc2": [1]}
    assert all(count == 40 for linear, count in seen if linear is decoder.layers[-2].fc2)

    full = decoder.start(conditioning.hidden_states, conditioning.attention_mask, 1, 2, 40)
    with torch.inference_mode():
        every_logits = full(codes, all_positions=True)
    # the same keys and values for the steps that follow, and the last position's logits as a full pass gives
    assert torch.equal(trimmed.keys, full.keys) and torch.equal(trimmed.values, full.values)
    assert trimmed.position == full.position == 40
    # exact mode: the same sums in another grouping; fast mode: the tail's one row runs through the step's
    # kernel (here bf16-int8: activations rounded to bf16, 2^-8) instead of the prefill's GEMM. A wrong
    # position or a missing layer would differ by the logits' own size
    tolerance = 1e-5 if precision == "native" else 1e-2
    torch.testing.assert_close(last_logits, every_logits[:, -1], rtol=0, atol=tolerance * every_logits.abs().max().item())
