"""Segue's own int8 kernel (native/int8_rows.c): built here with the C compiler, exact to its int8 weights."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bridge.engine.cpu_kernels import cpu_identity
from bridge.engine.musicgen import native_int8
from bridge.engine.musicgen.kernels import runnable_candidates, runnable_prefill_paths
from bridge.engine.musicgen.native_int8 import NativeInt8Linear, library, pack, unpack
from tests.native_builds import portable_library

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(native_int8.compiler() is None, reason="no C compiler on this machine")


@pytest.fixture
def fresh_build(tmp_path, monkeypatch):
    """library() built into an empty cache folder (and forgotten again afterwards)."""
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "cache"))
    library.cache_clear()
    yield tmp_path / "cache" / "native"
    library.cache_clear()


def test_it_is_built_once_per_machine_into_the_cache_and_offered_as_a_candidate(fresh_build):
    assert library() is not None
    built = sorted(fresh_build.glob("int8_rows-*.so"))
    assert len(built) == 1 and not list(fresh_build.glob("segue-build-*"))  # no half-written library left
    library.cache_clear()
    stamp = built[0].stat().st_mtime_ns
    assert library() is not None and built[0].stat().st_mtime_ns == stamp  # read, not compiled again
    assert "native-int8" in runnable_candidates(cpu_identity())
    if cpu_identity().has("avx2") and not cpu_identity().is_arm:
        assert native_int8.describe_build() == "AVX2 + FMA"


def test_without_a_working_compiler_it_is_left_out_with_one_log_line(fresh_build, monkeypatch, caplog):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with caplog.at_level(logging.INFO, logger=native_int8.__name__):
        assert library() is None
    assert "no C compiler found" in caplog.text
    assert "native-int8" not in runnable_candidates(cpu_identity())
    library.cache_clear()
    monkeypatch.setenv("CC", "false")  # found, but fails every build
    with caplog.at_level(logging.INFO, logger=native_int8.__name__):
        assert library() is None
    assert "failed" in caplog.text and not list(fresh_build.glob("*.so"))
    with pytest.raises(RuntimeError, match="could not be built"):
        NativeInt8Linear(torch.ones(8, 32))
    library.cache_clear()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("SEGUE_NATIVE_KERNEL", "0")  # the producer's way to leave it out
    assert library() is None and "native-int8" not in runnable_candidates(cpu_identity())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_compiler_started_by_a_process_killed_mid_build_dies_with_it(tmp_path):
    """The first load builds the kernel; a worker killed then (kill -9) must not leave the compiler
    running. The fake compiler writes its pid and sleeps; the process that started it is killed."""
    pid_file = tmp_path / "compiler.pid"
    compiler = tmp_path / "slow-cc"
    compiler.write_text(f'#!/bin/sh\n[ "$1" = --version ] && {{ echo slow-cc 1.0; exit 0; }}\n'
                        f'echo $$ > {pid_file}\nexec sleep 120\n')
    compiler.chmod(0o755)
    env = {**os.environ, "CC": str(compiler), "SEGUE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    starter = subprocess.Popen([sys.executable, "-c", "from bridge.engine.musicgen import native_int8; native_int8.library()"],
                               env=env)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline and starter.poll() is None, "the build never started"
            time.sleep(0.05)
        compiler_pid = int(pid_file.read_text())
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(timeout=30)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{compiler_pid}").exists() and "Z" not in process_state(compiler_pid):
            assert time.monotonic() < deadline, "the compiler outlived the process that started it"
            time.sleep(0.05)
    finally:
        starter.kill()
        if pid_file.exists() and process_state(int(pid_file.read_text())) not in ("gone", "Z"):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # this test failed: leave nothing behind


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return "gone"


@pytest.mark.parametrize(("out_features", "in_features"), [(96, 64), (1027, 1000), (8, 4100), (3, 5)])
def test_it_computes_x_times_its_int8_weights_for_any_shape_and_row_count(out_features, in_features):
    """Padded shapes too; rows 1-5 (a step: 1 or 2, takes: 4, an odd row pairs with a zero row);
    the only error is the activations' int16 rounding (~3e-5), far under the weights' (~0.009)."""
    torch.manual_seed(0)
    weight = torch.randn(out_features, in_features) * 0.05
    layer = NativeInt8Linear(weight)
    quantised = unpack(layer.packed, out_features, in_features)
    assert torch.equal(unpack(pack(quantised), out_features, in_features), quantised)
    for rows, path in ((1, ""), (2, ""), (3, ""), (4, ""), (5, ""), *((40, path) for path in layer.prefill_paths)):
        layer.prefill = path or layer.prefill  # 40 rows: a prefill, by each of its GEMMs
        if path not in runnable_prefill_paths(layer):
            continue
        x = torch.randn(rows, in_features) * 3
        meant = x @ layer.dequantized().T
        error = float((layer(x) - meant).norm() / meant.norm())
        assert error < 2e-4, (rows, path, error)
        weights_rounding = float((meant - x @ weight.T).norm() / (x @ weight.T).norm())
        assert error < weights_rounding / 20


def test_zero_rows_give_zeros_and_a_nan_stays_in_its_own_row():
    torch.manual_seed(0)
    layer = NativeInt8Linear(torch.randn(64, 48))
    x = torch.randn(3, 48)
    x[0] = 0
    x[1, 7] = float("nan")
    out = layer(x)
    assert torch.equal(out[0], torch.zeros(64))
    assert out[1].isnan().all() and not out[2].isnan().any()
    x[1, 7] = float("inf")
    assert layer(x)[1].isnan().all()


def test_the_portable_c_path_sums_exactly_what_the_avx2_path_does(tmp_path):
    """Arm and pre-AVX2 CPUs compile the plain C loops: the same integer sums, so the same outputs
    (the steps' kernel and the integer GEMM to the bit; the fp32 GEMM to its float rounding)."""
    if native_int8.describe_build() != "AVX2 + FMA":
        pytest.skip("this machine builds the portable path already")
    portable = portable_library(tmp_path)
    assert portable.segue_int8_rows_isa() == 0
    torch.manual_seed(2)
    layer = NativeInt8Linear(torch.randn(200, 2100) * 0.05)
    for rows, path in ((3, "native-int16"), (40, "native-int16"), (40, "native-fp32")):
        layer.lib, layer.prefill = native_int8.library(), path
        x = torch.randn(rows, 2100)
        fast = layer(x)
        layer.lib = portable
        if path == "native-int16":
            assert torch.equal(layer(x), fast), (rows, path)
        else:
            torch.testing.assert_close(layer(x), fast, rtol=1e-5, atol=1e-5)
