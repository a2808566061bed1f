"""A fast-mode prefill's causal self-attention in one native call (native/causal_attention.c), against SDPA."""


import pytest
import torch
import torch.nn.functional as F

from bridge.engine.musicgen import fast_decoder, native_attention
from bridge.engine.musicgen.fast_decoder import FastDecoder
from bridge.engine.musicgen.native_attention import (
    attend_causally,
    causal_attention_applies,
    native_attention_available,
)
from tests.native_builds import portable_library

pytestmark = pytest.mark.skipif(not native_attention_available(), reason="Segue's kernel library is not built for AVX2 here")


def sdpa(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """What the session ran before: PyTorch's causal SDPA on the projections' q, k and v."""
    rows, positions, width = qkv.shape
    q, k, v = qkv.reshape(rows, positions, 3, heads, width // 3 // heads).permute(2, 0, 3, 1, 4)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


# (rows, positions, heads, head_dim): one position; fewer than, exactly and just past a tile of six
# queries and of sixteen keys; an 8 s prompt's 401 at musicgen-small's heads; two rows
@pytest.mark.parametrize("rows, positions, heads, head_dim", [
    (1, 1, 2, 16), (1, 5, 2, 16), (1, 6, 3, 32), (2, 7, 3, 32), (1, 16, 2, 16), (1, 17, 2, 48), (1, 401, 16, 64),
    (2, 97, 4, 64),
])
def test_it_attends_causally_as_sdpa_does_to_float_rounding(rows, positions, heads, head_dim):
    qkv = torch.randn(rows, positions, 3 * heads * head_dim, generator=torch.Generator().manual_seed(positions))
    got = attend_causally(qkv, heads)
    assert got.shape == (rows, heads, positions, head_dim)
    torch.testing.assert_close(got, sdpa(qkv, heads), rtol=0, atol=1e-5)


def test_projections_with_a_wider_position_stride_are_read_in_place():
    wider = torch.randn(2, 50, 3 * 2 * 16 + 7)
    qkv = wider[:, :, : 3 * 2 * 16]  # e.g. a slice of a larger output: position stride 103, not 96
    torch.testing.assert_close(attend_causally(qkv, 2), sdpa(qkv.contiguous(), 2), rtol=0, atol=1e-5)


def test_a_score_far_above_the_rest_gives_its_value_and_none_overflows():
    heads, head_dim, positions = 1, 16, 40
    qkv = torch.randn(1, positions, 3 * head_dim, generator=torch.Generator().manual_seed(3))
    key = qkv[0, 17, head_dim : 2 * head_dim]
    qkv[0, 30, :head_dim] = 1e3 * key / key.norm()  # position 30 looks at 17 alone: scores ~1e3 apart
    got = attend_causally(qkv, heads)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[0, 0, 30], qkv[0, 17, 2 * head_dim :], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, sdpa(qkv, heads), rtol=0, atol=1e-4)


def test_a_head_of_no_whole_tiles_is_left_to_pytorch():
    qkv = torch.randn(1, 8, 3 * 24)
    assert not causal_attention_applies(qkv, 24) and causal_attention_applies(qkv, 16)
    assert not causal_attention_applies(qkv.double(), 16)
    with pytest.raises(ValueError, match="whole 16-column tiles"):
        attend_causally(qkv, 1)


def test_the_portable_c_path_attends_as_the_avx2_one(tmp_path, monkeypatch):
    portable = portable_library(tmp_path)
    qkv = torch.randn(2, 23, 3 * 3 * 16, generator=torch.Generator().manual_seed(6))
    avx2 = attend_causally(qkv, 3)
    monkeypatch.setattr(native_attention, "library", lambda: portable)
    torch.testing.assert_close(attend_causally(qkv, 3), avx2, rtol=0, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count_gives_the_same_bits(threads, monkeypatch):
    qkv = torch.randn(1, 61, 3 * 5 * 16, generator=torch.Generator().manual_seed(2))
    alone = attend_causally(qkv, 5)
    monkeypatch.setattr(native_attention, "team_size", lambda: threads)
    assert torch.equal(attend_causally(qkv, 5), alone)


def test_a_fast_mode_prefill_attends_natively_in_every_layer_but_the_last(tiny_model, monkeypatch):
    calls = []

    def counted(qkv, heads):
        calls.append(qkv.shape[1])
        return attend_causally(qkv, heads)

    monkeypatch.setattr(fast_decoder, "attend_causally", counted)
    native = FastDecoder(tiny_model, "int8", kernel="native-int8")
    generator = torch.Generator().manual_seed(5)
    text = torch.randn(1, 6, native.hidden_size, generator=generator)
    mask = torch.ones(1, 6, dtype=torch.long)
    tokens = torch.randint(0, native.vocab_size, (2, native.num_codebooks, 30), generator=generator)
    with torch.inference_mode():
        got = native.start(text, mask, 1, 2, 40)(tokens)
        assert calls == [30] * (len(native.layers) - 1)  # the last layer attends for its last position alone
        FastDecoder(tiny_model, "native").start(text, mask, 1, 2, 40)(tokens)
        assert calls == [30] * (len(native.layers) - 1)  # exact mode keeps PyTorch's attention
        monkeypatch.setattr(fast_decoder, "causal_attention_applies", lambda *args: False)  # SDPA, as before
        expected = native.start(text, mask, 1, 2, 40)(tokens)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
