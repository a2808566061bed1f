"""How a prefill's hundreds of rows are multiplied: int8 x int8, Segue's own kernel, or widened weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bridge.engine.cpu_kernels import KernelChoice, cpu_identity
from bridge.engine.musicgen import native_int8
from bridge.engine.musicgen.fast_decoder import FastDecoder
from bridge.engine.musicgen.int8_gemm import Int8Gemm, int8_gemm_available
from bridge.engine.musicgen.kernels import (
    prefill_linears,
    prefill_paths,
    runnable_prefill_paths,
    set_prefill_path,
    time_prefill_ms,
)
from bridge.engine.musicgen.quantize import make_linear, quantise_per_channel

ROOT = Path(__file__).resolve().parent.parent
AVX2_CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}


def many_rows_linears() -> list[str]:
    kernels = ["bf16-int8"]
    if native_int8.native_int8_available():
        kernels.append("native-int8")
    return kernels


@pytest.mark.skipif(not int8_gemm_available(), reason="torch._int_mm is not exact on this CPU (no VNNI)")
def test_the_int8_gemm_is_its_weights_product_to_16_bits_and_each_row_its_own():
    torch.manual_seed(0)
    weight = torch.randn(300, 256)
    quantised, scales = quantise_per_channel((weight,), torch.float32)
    rows = torch.randn(70, 256) * torch.logspace(-3, 3, 70)[:, None]  # rows of very different sizes
    rows[5] = 0.0
    found = Int8Gemm(quantised, scales)(rows)
    expected = rows.double() @ (quantised.double() * scales.double()[:, None]).t()
    error = (found.double() - expected).abs() / expected.abs().amax(dim=1, keepdim=True).clamp(min=1e-30)
    assert float(error.max()) < 1e-4  # the activations' ~16 bits; the weights' rounding is the same as Q's
    assert torch.equal(found[5], torch.zeros(300))
    alone = Int8Gemm(quantised, scales)(rows[17:18])
    assert torch.equal(alone[0], found[17])  # a row's bits do not depend on the rows beside it


def test_int8_x_int8_is_offered_only_where_it_sums_exactly():
    """Without VNNI oneDNN sums pairs of products in int16, which saturates: under an AVX2 cap the
    probe must find that (in a fresh process: the cap is read once)."""
    if cpu_identity().is_arm or not cpu_identity().has("avx2"):
        pytest.skip("an x86 CPU with AVX2 caps to AVX2")
    script = "from bridge.engine.musicgen.int8_gemm import int8_gemm_available; print(int8_gemm_available())"
    env = {**os.environ, **AVX2_CAPS, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("kernel", many_rows_linears())
def test_every_prefill_path_of_a_kernel_gives_its_weights_product(kernel):
    torch.manual_seed(1)
    weight, rows = torch.randn(192, 128), torch.randn(40, 128)
    linear = make_linear(kernel, weight, native_bf16=False)
    expected = rows @ linear.dequantized().t()
    paths = runnable_prefill_paths(linear)
    assert "widened" in paths and (kernel != "native-int8" or "native-rows" in paths)
    for path in paths:
        linear.prefill = path
        torch.testing.assert_close(linear(rows), expected, rtol=0, atol=2e-3 * float(expected.abs().max()))


def test_the_prefill_path_is_timed_set_on_every_linear_and_reported(tiny_model):
    decoder = FastDecoder(tiny_model, "int8", kernel="bf16-int8")
    paths = prefill_paths(decoder)
    timed = time_prefill_ms(decoder)
    assert set(timed) == (set(paths) if len(paths) > 1 else set()) and all(ms > 0 for ms in timed.values())
    for path in paths:
        set_prefill_path(decoder, path)
        assert {linear.prefill for linear in prefill_linears(decoder)} == {path}
    assert len(prefill_linears(decoder)) == 1 + 6 * len(decoder.layers)  # the heads and every layer's six
    with pytest.raises(ValueError, match="does not run here"):
        set_prefill_path(decoder, "fp8")
    choice = KernelChoice("native-int8", {"native-int8": 17.8, "bf16-int8": 55.9}, prefill="native-rows",
                          prefill_ms={"native-rows": 74.0, "widened": 84.5})
    assert choice.describe() == ("native-int8 (17.8 ms of linears per step; bf16-int8 55.9), "
                                 "prefill native-rows (74.0 ms per layer; widened 84.5)")
