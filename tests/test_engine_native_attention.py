"""A fast-mode step's self-attention in one native call (native/one_query_attention.c), against PyTorch's."""

import math

import pytest
import torch

from bridge.engine.musicgen import fast_decoder, kernels
from bridge.engine.musicgen.fast_decoder import FastDecoder, one_query_attention
from bridge.engine.musicgen.native_attention import (
    attend_one_query,
    attend_to_text,
    native_attention_available,
)

pytestmark = pytest.mark.skipif(not native_attention_available(), reason="Segue's kernel library is not built for AVX2 here")


def torch_attention(qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, position: int, heads: int):
    """The PyTorch ops fast mode ran before: the cache writes, then one_query_attention."""
    rows, head_dim = qkv.shape[0], keys.shape[-1]
    q, k, v = qkv.view(rows, 1, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    keys[:, :, position : position + 1] = k
    values[:, :, position : position + 1] = v
    return one_query_attention(q, keys[:, :, : position + 1], values[:, :, : position + 1])


# (rows, heads, head_dim, cache dtype); an fp16 cache takes heads of whole 8-lane vectors (native_cache_dtype)
SHAPES = [(2, 16, 64), (1, 4, 32), (2, 2, 72)]
CASES = [(*shape, dtype) for shape in SHAPES for dtype in (torch.float32, torch.float16)] + [(4, 3, 12, torch.float32)]


@pytest.mark.parametrize("rows, heads, head_dim, dtype", CASES)
@pytest.mark.parametrize("position", [0, 1, 7, 8, 9, 130])
def test_it_writes_the_cache_and_attends_as_pytorch_does_to_float_rounding(rows, heads, head_dim, position, dtype):
    # head_dim 12 runs the portable C loop (fp32 only), 72 a 64-wide block then an 8-wide one;
    # positions around the softmax's 8-wide exp and its remainder. An fp16 cache against PyTorch's
    # ops on that same cache widened: the conversions are exact, the rounding of the new key and
    # value is PyTorch's own.
    generator = torch.Generator().manual_seed(position * 31 + head_dim)
    capacity = 160
    qkv = 2 * torch.randn(rows, 1, 3 * heads * head_dim, generator=generator)
    keys = torch.randn(rows, heads, capacity, head_dim, generator=generator).to(dtype)
    values = torch.randn(rows, heads, capacity, head_dim, generator=generator).to(dtype)
    expected_keys, expected_values = keys.clone(), values.clone()  # written by PyTorch's cast
    expected_keys[:, :, position] = qkv.view(rows, 3, heads, head_dim)[:, 1].to(dtype)
    expected_values[:, :, position] = qkv.view(rows, 3, heads, head_dim)[:, 2].to(dtype)
    widened = qkv.view(rows, 1, 3, heads, head_dim).clone()
    widened[:, :, 1:] = widened[:, :, 1:].to(dtype).float()  # the new key and value as the cache holds them
    expected = torch_attention(widened.view(rows, 1, -1), expected_keys.float(), expected_values.float(), position, heads)

    got = attend_one_query(qkv, keys, values, position, heads)

    assert got.shape == expected.shape == (rows, heads, 1, head_dim) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(keys, expected_keys) and torch.equal(values, expected_values)  # the new position, nothing else


def test_a_score_far_above_the_rest_gives_its_value_without_overflow():
    heads, head_dim, capacity = 2, 64, 40
    keys = torch.randn(1, heads, capacity, head_dim)
    values = torch.randn(1, heads, capacity, head_dim)
    qkv = torch.zeros(1, 1, 3 * heads * head_dim)
    qkv[0, 0, :head_dim] = 1e3 * keys[0, 0, 17] / keys[0, 0, 17].norm()  # head 0's query: key 17, scores ~1e3 apart
    got = attend_one_query(qkv, keys, values, 30, heads)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[0, 0, 0], values[0, 0, 17], rtol=1e-5, atol=1e-5)


def test_exp_below_the_float_range_gives_zero_weight_not_a_nan():
    heads, head_dim = 1, 8
    keys = torch.zeros(1, heads, 16, head_dim)
    keys[0, 0, :15, 0] = -1.0
    keys[0, 0, 15, 0] = 1.0  # position 15: score +s, the rest -s, 2s far beyond exp's range
    values = torch.arange(16.0).view(1, 1, 16, 1).expand(1, heads, 16, head_dim).contiguous()
    qkv = torch.zeros(1, 1, 3 * head_dim)
    qkv[0, 0, 0] = 300 * math.sqrt(head_dim)
    qkv[0, 0, head_dim] = 1.0  # the new key at position 15
    qkv[0, 0, 2 * head_dim :] = 15.0
    assert torch.equal(attend_one_query(qkv, keys, values, 15, heads), torch.full((1, 1, 1, head_dim), 15.0))


def test_a_position_outside_the_cache_or_a_strided_cache_is_refused():
    keys, values = torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 8, 16)
    qkv = torch.zeros(1, 1, 3 * 32)
    with pytest.raises(ValueError, match="outside the cache"):
        attend_one_query(qkv, keys, values, 8, 2)
    with pytest.raises(ValueError, match="contiguous fp32 or fp16"):
        attend_one_query(qkv, keys.transpose(2, 3), values, 0, 2)
    with pytest.raises(ValueError, match="contiguous fp32 or fp16"):
        attend_one_query(qkv.half(), keys.half(), values.half(), 0, 2)
    with pytest.raises(ValueError, match="whole 8-lane vectors"):
        attend_one_query(torch.zeros(1, 1, 3 * 12), torch.zeros(1, 1, 8, 12).half(), torch.zeros(1, 1, 8, 12).half(), 0, 1)


def test_a_fast_mode_decoder_steps_to_the_same_logits_with_it_as_with_pytorchs_ops(tiny_model, monkeypatch):
    calls = []

    def counted(*args):
        calls.append(args[3])
        return attend_one_query(*args)

    monkeypatch.setattr(fast_decoder, "attend_one_query", counted)
    native = FastDecoder(tiny_model, "int8", kernel="native-int8")
    pytorch = FastDecoder(tiny_model, "int8", kernel="native-int8")
    pytorch.native_attention, pytorch.cache_dtype = False, None  # PyTorch's ops over an fp32 cache
    assert native.native_attention and native.cache_dtype == torch.float16
    generator = torch.Generator().manual_seed(5)
    text = torch.randn(1, 6, native.hidden_size, generator=generator)
    mask = torch.ones(1, 6, dtype=torch.long)
    codebooks, vocab = native.num_codebooks, native.vocab_size
    tokens = torch.randint(0, vocab, (2, codebooks, 40), generator=generator)
    with torch.inference_mode():  # as the engine runs its sessions
        sessions = [decoder.start(text, mask, 1, 2, 60) for decoder in (native, pytorch)]
        for session in sessions:
            session(tokens[:, :, :20])  # a prefill (native causal attention in the first), then steps
        for position in range(20, 40):
            got, expected = (session(tokens[:, :, position : position + 1]) for session in sessions)
            torch.testing.assert_close(got, expected, rtol=2e-3, atol=2e-3)  # the fp16 cache's rounding
    assert calls == [position for position in range(20, 40) for _ in native.layers]  # each step, each layer


def test_a_cached_kernel_choice_names_the_attention_its_kl_was_measured_with(tiny_model):
    # A choice measured by a Segue without native attention (its key without it) is measured again.
    assert kernels.model_key(tiny_model) == "tiny (2x32), native attention over an fp16 cache"


@pytest.mark.parametrize("rows, tokens", [(1, 1), (1, 12), (2, 37)])
def test_it_attends_to_the_text_as_sdpa_does_without_writing_anything(rows, tokens):
    generator = torch.Generator().manual_seed(tokens)
    heads, head_dim = 4, 16
    keys = torch.randn(rows, heads, tokens, head_dim, generator=generator)
    values = torch.randn(rows, heads, tokens, head_dim, generator=generator)
    query = 2 * torch.randn(rows, 1, heads * head_dim, generator=generator)
    kept = keys.clone(), values.clone()
    got = attend_to_text(query, keys, values)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query.view(rows, 1, heads, head_dim).transpose(1, 2), keys, values)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(keys, kept[0]) and torch.equal(values, kept[1])


def test_a_step_attends_to_padded_text_with_its_mask(tiny_model):
    decoder = FastDecoder(tiny_model, "int8", kernel="native-int8")
    text = torch.randn(1, 6, decoder.hidden_size)
    with torch.inference_mode():
        whole = decoder.start(text, torch.ones(1, 6, dtype=torch.long), 1, 2, 8)
        padded = decoder.start(text, torch.tensor([[1, 1, 1, 1, 0, 0]]), 1, 2, 8)
    assert whole.native_cross_attention and whole.cross_keys[0].is_contiguous()
    assert not padded.native_cross_attention  # PyTorch's SDPA with the mask
