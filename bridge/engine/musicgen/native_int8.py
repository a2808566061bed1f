"""The `native-int8` kernel: Segue's own C kernel for a few rows times int8 weights, built on this machine.

PyTorch's int8 kernels read a decoder step's weights at a fraction of the memory's speed on CPUs
without AVX-512 bf16 or VNNI (most producers' laptops): `native/int8_rows.c` reads them as one
prefetched stream, with int16 activations and exact int32 sums (its header says how). It is
compiled at the first load on a machine with the C compiler found there (`CC`, else cc, gcc or
clang), for this CPU's instruction set, into Segue's cache folder, and loaded with ctypes; the
cached library is named by a digest of the source, the compiler and its flags, so an edit or a new
compiler builds it again. No compiler (a Mac without the command-line tools, Windows): the kernel is
not a candidate, and the kernel choice takes PyTorch's. The prefill (hundreds of rows) goes through
whichever the kernel choice measured fastest here and found faithful:
- `native-int16`: int8_rows.c's register-tiled integer GEMM, the same bits as the steps' kernel (its
  `vpmaddwd` does up to twice an FMA's multiply-adds per cycle on Intel's cores, about as many on
  AMD's Zen 3);
- `native-fp32`: widening_gemm.c, an fp32 FMA GEMM that widens the weights a cache-sized panel at a
  time;
- `int8-gemm`: int8 x int8 through torch._int_mm (int8_gemm.py), where its sums are exact;
- `widened`: the weights widened in full to fp32 (bf16 where bf16 is native) for PyTorch's GEMM.
The same library holds a step's self-attention in one call (native/one_query_attention.c,
native_attention.py).
"""

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F

from bridge import paths
from bridge.engine.musicgen.int8_gemm import Int8Gemm
from bridge.engine.musicgen.step_threads import on_every_thread, team_size

SOURCES = ("int8_rows.c", "widening_gemm.c", "one_query_attention.c", "causal_attention.c", "lstm.c")  # built into one library
HEADERS = ("vector_math.h",)  # included by them
ABI_VERSION = 6
CHANNELS, INPUTS = 4, 16  # the packed block: as CHANNELS and INPUTS in int8_rows.c
# Above this many rows (a prefill of an audio prompt) the few-row kernels are not the fast ones: this
# kernel and quantize's widen the weights for a GEMM instead.
FEW_ROWS = 16
COMPILE_TIMEOUT_SECONDS = 120
PR_SET_PDEATHSIG = 1  # linux/prctl.h

log = logging.getLogger(__name__)


def compiler() -> str | None:
    """The C compiler to build with: `CC` if set, else the first of cc, gcc, clang on PATH."""
    chosen = os.environ.get("CC")
    if chosen:
        return chosen if shutil.which(chosen.split()[0]) else None
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def isa_flags(machine: str | None = None) -> list[str]:
    """Compiler flags for this CPU's vector unit: AVX2 + FMA on x86 (the kernel's intrinsics path;
    an AVX-512 machine runs it too) with F16C's half-float conversions (every AVX2 CPU has them:
    Intel's since Ivy Bridge, AMD's since Piledriver), the native core on Arm (NEON through the
    vectoriser)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        return ["-mavx2", "-mfma", "-mf16c"] if _x86_has_avx2() else []
    if machine in ("aarch64", "arm64"):
        return ["-mcpu=native"]
    return []


def _x86_has_avx2() -> bool:
    from bridge.engine.cpu_kernels import cpu_identity

    flags = cpu_identity().flags
    return "avx2" in flags and "fma" in flags


def _dies_with_its_starter() -> Callable[[], None] | None:
    """Linux: a preexec function that has the kernel SIGKILL the child when the thread that started it
    ends, so a compiler never outlives an engine worker killed mid-build (kill -9 included). The libc
    function is looked up here, in the parent: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _build(cc: str, flags: list[str], sources: list[Path], target: Path) -> str:
    """Compile `sources` to the shared library `target` (atomically); '' or the compiler's complaint."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segue-build-", dir=target.parent) as folder:
        built = Path(folder) / target.name
        command = [*cc.split(), "-O3", "-shared", "-fPIC", *flags, *map(str, sources), "-o", str(built), "-lm"]
        try:
            # The waiting thread is the starter: the compiler dies with it, or with the whole process.
            done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_SECONDS, check=False,
                                  preexec_fn=_dies_with_its_starter())  # noqa: PLW1509 (no lock is taken in it)
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)
        if done.returncode != 0:
            return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        os.replace(built, target)
    return ""


@functools.cache
def library() -> ctypes.CDLL | None:
    """The kernel's library for this machine, built on first use; None where it cannot be built."""
    if os.environ.get("SEGUE_NATIVE_KERNEL", "1") == "0":
        return None
    cc = compiler()
    if cc is None:
        log.info("native-int8: no C compiler found (set CC); PyTorch's kernels only")
        return None
    names = SOURCES + HEADERS
    try:
        texts = [resources.files("bridge.engine.musicgen.native").joinpath(name).read_bytes() for name in names]
    except OSError as error:  # a bundle packed without them
        log.info("native-int8: its C sources are missing (%s); PyTorch's kernels only", error)
        return None
    version = _compiler_version(cc).encode()  # one `cc --version` for both flag sets
    with tempfile.TemporaryDirectory(prefix="segue-source-") as folder:
        for name, text in zip(names, texts, strict=True):
            (Path(folder) / name).write_bytes(text)
        sources = [Path(folder) / name for name in SOURCES]
        for flags in ([*isa_flags(), "-fopenmp"], isa_flags()):  # Apple's clang has no OpenMP: one thread
            digest = hashlib.sha256(b"".join(texts) + version + " ".join(flags).encode())
            target = paths.cache_dir() / "native" / f"int8_rows-{digest.hexdigest()[:16]}.so"
            problem = "" if target.exists() else _build(cc, flags, sources, target)
            if problem:
                log.info("native-int8: %s %s failed: %s", cc, " ".join(flags), problem)
                continue
            try:
                loaded = _bind(ctypes.CDLL(str(target)))
            except (OSError, AttributeError) as error:
                log.info("native-int8: cannot load %s: %s", target, error)
                continue
            if loaded.segue_int8_rows_version() == ABI_VERSION:
                return loaded
    return None


def _compiler_version(cc: str) -> str:
    try:
        done = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return cc
    return cc + done.stdout


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, pointer = ctypes.c_int64, ctypes.c_void_p
    lib.segue_int8_rows_version.restype = ctypes.c_int
    lib.segue_int8_rows_isa.restype = ctypes.c_int
    rows_arguments = [pointer, i64, i64, i64, pointer, pointer, i64, i64, i64, pointer, i64, ctypes.c_int]
    for function in (lib.segue_int8_rows, lib.segue_int8_gemm, lib.segue_widening_gemm):  # the same arguments
        function.restype = ctypes.c_int
        function.argtypes = rows_arguments
    lib.segue_int8_rows_fused.restype = ctypes.c_int  # and, after them, what a step does around the layer
    lib.segue_int8_rows_fused.argtypes = [*rows_arguments, pointer, pointer, ctypes.c_double, ctypes.c_int, pointer, i64]
    lib.segue_one_query_attention.restype = ctypes.c_int
    lib.segue_one_query_attention.argtypes = [pointer, i64, pointer, pointer, i64, i64, i64, i64, i64, ctypes.c_int,
                                              ctypes.c_int, pointer, i64, ctypes.c_int]
    lib.segue_causal_attention.restype = ctypes.c_int
    lib.segue_causal_attention.argtypes = [pointer, i64, i64, i64, i64, i64, i64, pointer, ctypes.c_int]
    lib.segue_lstm_layer.restype = ctypes.c_int
    lib.segue_lstm_layer.argtypes = [pointer, i64, i64, i64, pointer, pointer, pointer, pointer, ctypes.c_int]
    return lib


def native_int8_available() -> bool:
    return library() is not None


def describe_build() -> str:
    """e.g. 'AVX2 + FMA' or 'portable C', for logs and the bench."""
    lib = library()
    if lib is None:
        return "not built"
    return {2: "AVX2 + FMA"}.get(lib.segue_int8_rows_isa(), "portable C")


def pack(quantised: torch.Tensor) -> torch.Tensor:
    """(n, k) int8 weights to the kernel's (n/4, k/16, 4, 16) blocks, zero-padded to whole blocks."""
    out_features, in_features = quantised.shape
    padded = F.pad(quantised, (0, -in_features % INPUTS, 0, -out_features % CHANNELS))
    rows, columns = padded.shape
    return padded.view(rows // CHANNELS, CHANNELS, columns // INPUTS, INPUTS).permute(0, 2, 1, 3).contiguous()


def unpack(packed: torch.Tensor, out_features: int, in_features: int, dtype: torch.dtype = torch.int8) -> torch.Tensor:
    """The (out, in) weights of `packed`, in `dtype`: one pass, converting as it copies."""
    blocks, inputs, channels, width = packed.shape
    out = torch.empty((blocks, channels, inputs, width), dtype=dtype, device=packed.device)
    out.copy_(packed.permute(0, 2, 1, 3))
    return out.view(blocks * channels, inputs * width)[:out_features, :in_features]


class NativeInt8Linear:
    """y = x (s * Q)^T by int8_rows.c for a step's few rows; a GEMM for a prefill (`prefill`: which)."""

    kernel = "native-int8"
    prefill_paths = ("native-int16", "native-fp32", "int8-gemm", "widened")  # the module docstring's
    native_gemms = {"native-int16": "segue_int8_gemm", "native-fp32": "segue_widening_gemm"}

    def __init__(self, *weights: torch.Tensor, wide_dtype: torch.dtype = torch.float32) -> None:
        """`wide_dtype`: what the prefill widens the weights to, bf16 where it is native (AMX's bf16
        GEMM ran an 8 s prompt's prefill faster than fp32), else fp32."""
        from bridge.engine.musicgen.quantize import quantise_per_channel

        lib = library()
        if lib is None:
            raise RuntimeError("the native-int8 kernel could not be built on this machine")
        self.lib = lib
        quantised, self.scales = quantise_per_channel(weights, torch.float32)
        self.out_features, self.in_features = quantised.shape
        self.packed = pack(quantised)
        self.padded_out = self.packed.shape[0] * CHANNELS
        self.padded_in = self.packed.shape[1] * INPUTS
        # the arguments every call passes about the weights (the packed tensor never moves)
        self._weights = (self.packed.data_ptr(), self.scales.data_ptr(), self.out_features, self.padded_out, self.padded_in)
        self.wide_dtype = wide_dtype
        self.prefill = "widened"  # one of prefill_paths: chosen per machine by measurement (kernels.py)
        self._gemm: Int8Gemm | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.numel() <= FEW_ROWS * shape[-1]:  # a step's rows: the fused call with nothing around the layer
            out = self.fused(x if x.dtype == torch.float32 else x.float(), None, False, None)
            return out if x.dtype == torch.float32 else out.to(x.dtype)
        rows = x.reshape(-1, shape[-1]).float().contiguous()
        if self.prefill in self.native_gemms:
            out = self._native(getattr(self.lib, self.native_gemms[self.prefill]), rows)
        elif self.prefill == "int8-gemm":
            if self._gemm is None:  # the weights unpacked for torch._int_mm, at the first prefill
                self._gemm = Int8Gemm(unpack(self.packed, self.out_features, self.in_features), self.scales)
            out = self._gemm(rows)
        else:
            wide = self.wide_dtype
            weight = unpack(self.packed, self.out_features, self.in_features, wide)
            out = on_every_thread(F.linear, rows.to(wide), weight).float() * self.scales
        return out.to(x.dtype).reshape(*shape[:-1], -1)

    def fused(self, x: torch.Tensor, norm: tuple[int, int, float] | None, gelu: bool,
              residual: torch.Tensor | None) -> torch.Tensor:
        """residual + gelu(layer_norm(x) W^T) for a step's few fp32 rows in one call (int8_rows.c's
        segue_int8_rows_fused), each part only where given; `norm`: its (weight, bias, eps) pointers."""
        if not x.is_contiguous():
            x = x.contiguous()
        if residual is not None and not residual.is_contiguous():
            residual = residual.contiguous()
        out = torch.empty(*x.shape[:-1], self.out_features)
        weight, bias, eps = norm or (None, None, 0.0)
        status = self.lib.segue_int8_rows_fused(
            x.data_ptr(), x.numel() // self.in_features, self.in_features, self.in_features, *self._weights,
            out.data_ptr(), self.out_features, team_size(), weight, bias, eps, gelu,
            None if residual is None else residual.data_ptr(), self.out_features,
        )
        if status != 0:
            raise MemoryError("native-int8: out of memory for the activations")
        return out

    def _native(self, function, rows: torch.Tensor) -> torch.Tensor:
        """A prefill's `rows` (fp32, contiguous) through one of the library's GEMMs (they take the same arguments)."""
        out = torch.empty(rows.shape[0], self.out_features)
        status = function(rows.data_ptr(), rows.shape[0], self.in_features, self.in_features, *self._weights,
                          out.data_ptr(), self.out_features, team_size())
        if status != 0:
            raise MemoryError("native-int8: out of memory for the activations")
        return out

    def dequantized(self) -> torch.Tensor:
        return unpack(self.packed, self.out_features, self.in_features, torch.float32) * self.scales[:, None]

    @property
    def nbytes(self) -> int:
        return self.packed.numel() + self.scales.numel() * 4
