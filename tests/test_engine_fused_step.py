"""A step's LayerNorm, GELU and residual sum in the native-int8 call (fused_step.py, int8_rows.c's
segue_int8_rows_fused), against the same maths as PyTorch ops."""


import pytest
import torch
import torch.nn.functional as F

from bridge.engine.musicgen import fused_step, native_int8
from bridge.engine.musicgen.fast_decoder import FastDecoder
from bridge.engine.musicgen.fused_step import LayerNorm, linear_around
from bridge.engine.musicgen.native_int8 import NativeInt8Linear
from bridge.engine.musicgen.quantize import DenseLinear
from tests.native_builds import portable_library

pytestmark = pytest.mark.skipif(not native_int8.native_int8_available(), reason="Segue's kernel library is not built here")


def as_ops(linear, x, norm=None, gelu=False, residual=None):
    out = linear(x if norm is None else norm(x))
    out = F.gelu(out) if gelu else out
    return out if residual is None else residual + out


def random_norm(width: int, generator: torch.Generator) -> LayerNorm:
    return LayerNorm(1 + 0.2 * torch.randn(width, generator=generator), 0.1 * torch.randn(width, generator=generator), 1e-5)


# 37 outputs: the GELU's scalar tail after whole 8-lane vectors; 1-3 rows: a pair and an odd row
@pytest.mark.parametrize("rows, in_features, out_features", [(1, 64, 37), (2, 1024, 4096), (3, 96, 200)])
def test_norm_gelu_and_residual_in_the_call_are_pytorchs_ops_to_float_rounding(rows, in_features, out_features):
    generator = torch.Generator().manual_seed(rows)
    linear = NativeInt8Linear(torch.randn(out_features, in_features, generator=generator) * 0.3)
    x = 3 * torch.randn(rows, 1, in_features, generator=generator) + 0.5  # off-centre: the norm matters
    norm = random_norm(in_features, generator)
    residual = torch.randn(rows, 1, out_features, generator=generator)
    for parts in ({"norm": norm}, {"gelu": True}, {"residual": residual}, {"norm": norm, "gelu": True, "residual": residual}):
        got = linear_around(linear, x, **parts)
        expected = as_ops(linear, x, **parts)
        assert got.shape == expected.shape == (rows, 1, out_features)
        # the norm's rounding can move an int16 activation by one step: ~3e-5 of the row's largest value
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=2e-4 * float(expected.abs().max())), parts


def test_its_gelu_is_pytorchs_across_the_range():
    # an identity layer (int8 identity weights are exact) puts chosen values through the GELU
    width = 64
    linear = NativeInt8Linear(torch.eye(width))
    values = torch.linspace(-12, 12, 2 * width).view(2, 1, width)
    for row in values:
        got = linear_around(linear, row[None], gelu=True)
        expected = F.gelu(linear(row[None]))
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert linear_around(linear, torch.full((1, width), -30.0), gelu=True).abs().max() < 1e-30  # no NaN far out


def test_other_kernels_a_prefill_and_other_dtypes_run_the_same_maths_as_ops():
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(48, 32, generator=generator)
    norm = random_norm(32, generator)
    dense = DenseLinear(weight)
    x, residual = torch.randn(2, 1, 32, generator=generator), torch.randn(2, 1, 48, generator=generator)
    assert torch.equal(linear_around(dense, x, norm, True, residual), as_ops(dense, x, norm, True, residual))
    native = NativeInt8Linear(weight)
    many = torch.randn(40, 32, generator=generator)  # a prefill's rows: not the step's call
    assert not fused_step._fusable(native, many, norm, None)
    assert not fused_step._fusable(native, x.double(), norm, None)
    assert fused_step._fusable(native, x, norm, residual)


def test_a_fast_mode_decoder_steps_to_the_same_logits_fused_as_with_the_ops(tiny_model, monkeypatch):
    fused = FastDecoder(tiny_model, "int8", kernel="native-int8")
    generator = torch.Generator().manual_seed(6)
    text = torch.randn(1, 6, fused.hidden_size, generator=generator)
    tokens = torch.randint(0, fused.vocab_size, (2, fused.num_codebooks, 24), generator=generator)
    calls = []
    counted = NativeInt8Linear.fused

    def count(self, *args):
        calls.append(self)
        return counted(self, *args)

    def run() -> list[torch.Tensor]:
        with torch.inference_mode():
            session = fused.start(text, torch.ones(1, 6, dtype=torch.long), 1, 2, 30)
            session(tokens[:, :, :8])  # a short prefill: 16 rows, still the few-row call
            return [session(tokens[:, :, position : position + 1]) for position in range(8, 24)]

    monkeypatch.setattr(NativeInt8Linear, "fused", count)
    got = run()
    layers = len(fused.layers)
    assert len(calls) == 17 * (6 * layers + 1)  # every call's linears (cross_out's sum stays in place), the heads
    monkeypatch.setattr(fused_step, "_fusable", lambda *args: False)
    for step, expected in zip(got, run(), strict=True):
        torch.testing.assert_close(step, expected, rtol=1e-3, atol=1e-3)


def test_the_portable_c_path_fuses_the_same_maths(tmp_path):
    if native_int8.describe_build() != "AVX2 + FMA":
        pytest.skip("this machine builds the portable path already")
    generator = torch.Generator().manual_seed(8)
    linear = NativeInt8Linear(torch.randn(40, 64, generator=generator))
    x, norm = 2 * torch.randn(2, 64, generator=generator), random_norm(64, generator)
    residual = torch.randn(2, 40, generator=generator)
    avx2 = linear_around(linear, x, norm, True, residual)
    linear.lib = portable_library(tmp_path)
    torch.testing.assert_close(linear_around(linear, x, norm, True, residual), avx2, rtol=1e-5, atol=1e-5)
