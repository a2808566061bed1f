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


def test_int8_x_int8_is_offered_exactly_where_it_sums_exactly():
    """oneDNN's AVX2 path may add pairs of products in int16 (`vpmaddubsw`), which saturates: seen
    on a Zen 4 capped to AVX2, not on a Zen 3 that has AVX2 alone. The probe's answer must be the
    truth on this machine, natively and capped (in a fresh process: the cap is read once), as found
    by full-range random matrices against their exact product."""
    if cpu_identity().is_arm or not cpu_identity().has("avx2"):
        pytest.skip("an x86 CPU with AVX2 caps to AVX2")
    script = (
        "import torch\n"
        "from bridge.engine.musicgen.int8_gemm import int8_gemm_available\n"
        "torch.manual_seed(0)\n"
        "a = torch.randint(-127, 128, (64, 512), dtype=torch.int8)\n"
        "b = torch.randint(-127, 128, (512, 64), dtype=torch.int8)\n"
        "try:\n"
        "    exact = torch.equal(torch._int_mm(a, b).double(), a.double() @ b.double())\n"
        "except RuntimeError:\n"
        "    exact = False\n"
        "print(int8_gemm_available(), exact)\n"
    )
    for caps in ({}, AVX2_CAPS):
        env = {**os.environ, **caps, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        offered, exact = done.stdout.split()
        assert offered == exact, f"the probe says {offered} where exact sums are {exact} (caps: {caps})"


needs_native = pytest.mark.skipif(not native_int8.native_int8_available(), reason="no C compiler here")


@needs_native
def test_the_native_gemm_gives_the_bits_of_the_steps_kernel_row_for_row():
    """A prompt prefilled through the GEMM is the prompt stepped through: the same bits for every row,
    at any row count (tiles of three, the last padded) and widths that are not whole blocks."""
    torch.manual_seed(2)
    for out_features, in_features, rows in ((300, 1030, 47), (1024, 4096, 34), (5, 16, 17)):
        linear = make_linear("native-int8", torch.randn(out_features, in_features) * 0.05, native_bf16=False)
        linear.prefill = "native-int16"
        x = torch.randn(rows, in_features) * torch.logspace(-2, 2, rows)[:, None]
        x[4] = 0.0
        x[7, 3] = float("inf")
        found = linear(x)
        stepped = torch.cat([linear(x[row:row + 2]) for row in range(0, rows, 2)])  # 2 rows: the steps' kernel
        assert found.shape == (rows, out_features)
        assert torch.equal(found.nan_to_num(7.0), stepped.nan_to_num(7.0))
        assert torch.equal(found[4], torch.zeros(out_features)) and bool(found[7].isnan().all())


@needs_native
def test_the_native_kernels_sum_the_largest_products_without_overflow():
    """The worst case of the int32 sums: every activation at its int16 extreme times every weight at
    127, 4096 inputs deep (8 x 512: each 512's sum is 2^31 - 2^22 and must not wrap)."""
    linear = make_linear("native-int8", torch.ones(8, 4096), native_bf16=False)
    for rows, path in ((2, "native-int16"), (40, "native-int16"), (40, "native-fp32")):  # steps', then GEMMs
        linear.prefill = path
        found = linear(torch.ones(rows, 4096))
        torch.testing.assert_close(found, torch.full((rows, 8), 4096.0), rtol=1e-6, atol=0)


@pytest.mark.parametrize("kernel", many_rows_linears())
def test_every_prefill_path_of_a_kernel_gives_its_weights_product(kernel):
    torch.manual_seed(1)
    weight, rows = torch.randn(192, 128), torch.randn(40, 128)
    linear = make_linear(kernel, weight, native_bf16=False)
    expected = rows @ linear.dequantized().t()
    paths = runnable_prefill_paths(linear)
    assert "widened" in paths and (kernel != "native-int8" or {"native-int16", "native-fp32"} <= set(paths))
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
    choice = KernelChoice("native-int8", {"native-int8": 17.8, "bf16-int8": 55.9}, prefill="native-fp32",
                          prefill_ms={"native-fp32": 74.0, "widened": 84.5})
    assert choice.describe() == ("native-int8 (17.8 ms of linears per step; bf16-int8 55.9), "
                                 "prefill native-fp32 (74.0 ms per layer; widened 84.5)")
