"""Segue's native kernels built for an Arm CPU (aarch64, as on Apple Silicon, Graviton or Snapdragon
laptops) compute what this machine's build computes.

No Arm machine runs the tests, so the native sources are cross-compiled (`aarch64-linux-gnu-gcc`,
as a producer's compiler would build them: the portable C paths, NEON through the vectoriser, with
OpenMP) together with tests/native/run_kernel.c, and run under QEMU's user-mode emulation on the
same inputs as this machine's library. The emulation says nothing about speed; it catches a source
that does not build for Arm, or that computes something else there. Skipped where the cross
compiler or QEMU is missing (`.ci/run` installs both).
"""

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.engine.musicgen import native_int8
from bridge.engine.musicgen.native_int8 import NativeInt8Linear

CROSS_COMPILER, EMULATOR = "aarch64-linux-gnu-gcc", "qemu-aarch64"
ARM_CPU = "neoverse-n1"  # Armv8.2 with dot products: Graviton 2, and the baseline of Apple's M1
HARNESS = Path(__file__).parent / "native" / "run_kernel.c"

pytestmark = pytest.mark.skipif(
    shutil.which(CROSS_COMPILER) is None or shutil.which(EMULATOR) is None or native_int8.library() is None,
    reason=f"needs {CROSS_COMPILER}, {EMULATOR} and this machine's native build",
)


@pytest.fixture(scope="module")
def arm_kernel(tmp_path_factory) -> Path:
    """run_kernel built with the native sources for aarch64 (static: QEMU needs no Arm libraries)."""
    folder = tmp_path_factory.mktemp("arm")
    native = resources.files("bridge.engine.musicgen.native")
    for name in native_int8.SOURCES + native_int8.HEADERS:
        (folder / name).write_bytes(native.joinpath(name).read_bytes())
    binary = folder / "run_kernel"
    subprocess.run([CROSS_COMPILER, "-O3", f"-mcpu={ARM_CPU}", "-fopenmp", "-static", str(HARNESS),
                    *(str(folder / name) for name in native_int8.SOURCES), "-o", str(binary), "-lm"],
                   check=True, timeout=300, capture_output=True)
    return binary


class ArmCall:
    """One call of the Arm build: arguments as run_kernel takes them, tensors through files (its outputs fp32)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.arguments, self.outputs = folder, [], {}

    def tensor(self, name: str, value: torch.Tensor, written: bool = False) -> "ArmCall":
        path = self.folder / f"{name}.bin"
        path.write_bytes(value.contiguous().numpy().tobytes())
        self.arguments.append(f"u:{path}" if written else f"f:{path}")
        if written:
            self.outputs[name] = (Path(f"{path}.out"), value.shape)
        return self

    def output(self, name: str, shape: tuple[int, ...]) -> "ArmCall":
        path = self.folder / f"{name}.bin"
        self.arguments.append(f"o:{path}:{4 * int(np.prod(shape))}")
        self.outputs[name] = (path, shape)
        return self

    def integers(self, *values: int) -> "ArmCall":
        self.arguments += [f"i:{value}" for value in values]
        return self

    def run(self, binary: Path, function: str) -> dict[str, torch.Tensor]:
        done = subprocess.run([EMULATOR, str(binary), function, *self.arguments], capture_output=True, text=True,
                              timeout=300, check=True)
        assert done.stdout.strip() == "0", done.stdout + done.stderr  # the function's status
        return {name: torch.from_numpy(np.fromfile(path, dtype=np.float32).copy()).view(shape)
                for name, (path, shape) in self.outputs.items()}


def linear_case(rows: int, in_features: int, out_features: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    linear = NativeInt8Linear(torch.randn(out_features, in_features, generator=generator))
    return linear, torch.randn(rows, in_features, generator=generator)


def weights_call(folder: Path, linear: NativeInt8Linear, x: torch.Tensor) -> ArmCall:
    rows = x.shape[0]
    return (ArmCall(folder).tensor("x", x).integers(rows, linear.in_features, linear.in_features)
            .tensor("packed", linear.packed).tensor("scales", linear.scales)
            .integers(linear.out_features, linear.padded_out, linear.padded_in)
            .output("out", (rows, linear.out_features)).integers(linear.out_features, 2))


@pytest.mark.parametrize(("function", "rows", "in_features", "out_features"), [
    ("rows", 2, 1024, 72),  # a step's two rows (guided and unguided)
    ("rows", 3, 200, 37),  # widths that are not whole blocks
    ("gemm", 40, 256, 64),  # a prefill's rows: native-int16
    ("widening", 40, 256, 64),  # and native-fp32
])
def test_the_arm_build_multiplies_as_this_one(arm_kernel, tmp_path, function, rows, in_features, out_features):
    linear, x = linear_case(rows, in_features, out_features, seed=rows + in_features)
    here = torch.empty(rows, out_features)
    symbol = {"rows": "segue_int8_rows", "gemm": "segue_int8_gemm", "widening": "segue_widening_gemm"}[function]
    status = getattr(linear.lib, symbol)(x.data_ptr(), rows, in_features, in_features, *linear._weights,
                                         here.data_ptr(), out_features, 2)
    assert status == 0
    arm = weights_call(tmp_path, linear, x).run(arm_kernel, function)["out"]
    torch.testing.assert_close(arm, here, rtol=1e-5, atol=1e-5 * here.abs().max().item())
    assert here.abs().max() > 1.0


def test_the_arm_build_fuses_norm_gelu_and_sum_as_this_one(arm_kernel, tmp_path):
    linear, x = linear_case(2, 96, 40, seed=5)
    generator = torch.Generator().manual_seed(6)
    weight, bias = 1 + 0.1 * torch.randn(96, generator=generator), 0.1 * torch.randn(96, generator=generator)
    residual = torch.randn(2, 40, generator=generator)
    here = linear.fused(x, (weight.data_ptr(), bias.data_ptr(), 1e-5), True, residual)
    call = weights_call(tmp_path, linear, x).tensor("weight", weight).tensor("bias", bias)
    call.arguments.append("d:1e-5")
    call.integers(1).tensor("residual", residual).integers(40)
    arm = call.run(arm_kernel, "fused")["out"]
    torch.testing.assert_close(arm, here, rtol=1e-5, atol=1e-5)


def test_the_arm_build_runs_the_lstm_as_this_one(arm_kernel, tmp_path):
    frames, streams, hidden = 30, 2, 48
    generator = torch.Generator().manual_seed(7)
    projected = torch.randn(frames, streams, 4 * hidden, generator=generator)
    recurrent = 0.2 * torch.randn(4 * hidden, hidden, generator=generator)
    h, c = 0.5 * torch.randn(streams, hidden, generator=generator), torch.randn(streams, hidden, generator=generator)
    here_h, here_c, here = h.clone(), c.clone(), torch.empty(frames, streams, hidden)
    status = native_int8.library().segue_lstm_layer(projected.data_ptr(), frames, streams, hidden, recurrent.data_ptr(),
                                                     here_h.data_ptr(), here_c.data_ptr(), here.data_ptr(), 2)
    assert status == 0
    arm = (ArmCall(tmp_path).tensor("projected", projected).integers(frames, streams, hidden)
           .tensor("recurrent", recurrent).tensor("h", h, written=True).tensor("c", c, written=True)
           .output("out", (frames, streams, hidden)).integers(2).run(arm_kernel, "lstm"))
    torch.testing.assert_close(arm["out"], here, rtol=0, atol=1e-5)
    torch.testing.assert_close(arm["h"], here_h, rtol=0, atol=1e-5)
    torch.testing.assert_close(arm["c"], here_c, rtol=0, atol=1e-5)


def test_the_arm_build_attends_causally_as_this_one(arm_kernel, tmp_path):
    rows, positions, heads, head_dim = 2, 37, 3, 16
    qkv = torch.randn(rows, positions, 3 * heads * head_dim, generator=torch.Generator().manual_seed(8))
    here = torch.empty(rows, positions, heads * head_dim)
    status = native_int8.library().segue_causal_attention(qkv.data_ptr(), qkv.stride(0), qkv.stride(1), rows, positions,
                                                           heads, head_dim, here.data_ptr(), 2)
    assert status == 0
    arm = (ArmCall(tmp_path).tensor("qkv", qkv).integers(qkv.stride(0), qkv.stride(1), rows, positions, heads, head_dim)
           .output("out", (rows, positions, heads * head_dim)).integers(2).run(arm_kernel, "causal"))
    torch.testing.assert_close(arm["out"], here, rtol=0, atol=1e-5)


def test_a_harness_that_computes_something_else_is_caught(arm_kernel, tmp_path):
    """The comparison can fail: other weights, another answer."""
    linear, x = linear_case(2, 64, 16, seed=9)
    other, _ = linear_case(2, 64, 16, seed=10)
    here = torch.empty(2, 16)
    assert linear.lib.segue_int8_rows(x.data_ptr(), 2, 64, 64, *linear._weights, here.data_ptr(), 16, 2) == 0
    arm = weights_call(tmp_path, other, x).run(arm_kernel, "rows")["out"]
    assert not torch.allclose(arm, here, rtol=1e-3, atol=1e-3)
