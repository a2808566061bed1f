"""This CPU's identity and the int8 kernel measured fastest on it, kept in Segue's cache folder.

No torch here: `segue models` shows the choice without loading the engine. The identity is what
decides which kernel wins: the CPU model, its instruction-set flags that matter to matrix kernels,
the torch version, and the environment variables that cap what PyTorch's kernels may use
(`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA`, `FBGEMM_ENABLE_INSTRUCTIONS`, e.g. to run the AVX2
paths on an AVX-512 machine). A different identity measures again.
"""

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bridge import paths
from bridge.atomic_files import replacing

# Flags that change which matrix kernel is fastest (x86 /proc/cpuinfo names; Arm ones after them).
KERNEL_FLAGS = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
    "amx_bf16", "asimd", "asimddp", "i8mm", "bf16", "sve",
)
CAP_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "FBGEMM_ENABLE_INSTRUCTIONS")
CACHE_FILE = "cpu_kernels.json"


@dataclass(frozen=True)
class CpuIdentity:
    arch: str  # "x86_64", "aarch64", "arm64"
    model: str
    flags: tuple[str, ...]  # those of KERNEL_FLAGS this CPU has, as PyTorch may use them here
    torch_version: str
    caps: tuple[tuple[str, str], ...] = ()  # capping environment variables that are set

    @property
    def key(self) -> str:
        caps = ",".join(f"{name}={value}" for name, value in self.caps)
        return f"{self.arch}|{self.model}|{' '.join(self.flags)}|torch {self.torch_version}|{caps}"

    def has(self, *flags: str) -> bool:
        return any(flag in self.flags for flag in flags)

    @property
    def is_arm(self) -> bool:
        return self.arch.lower() in ("aarch64", "arm64")


@dataclass
class KernelChoice:
    """The kernel fast mode runs on this CPU, and the measurements it was chosen by."""

    kernel: str
    step_ms: dict[str, float] = field(default_factory=dict)  # per candidate: the model's linears, one step
    kl_nats: dict[str, float] = field(default_factory=dict)  # per candidate checked: teacher-forced KL to fp32
    rejected: dict[str, str] = field(default_factory=dict)  # candidate -> why not
    measured_at: str = ""
    cpu: str = ""
    prefill: str = ""  # how the chosen kernel multiplies a prefill's rows (one of its prefill_paths, or its own)
    prefill_ms: dict[str, float] = field(default_factory=dict)  # per path: one layer's linears, an 8 s prompt
    # a prefill's causal self-attention: "native" (causal_attention.c) or "sdpa" (PyTorch's), by its timings
    # per way (one layer, an 8 s prompt); empty where only PyTorch's runs
    prefill_attention: str = ""
    prefill_attention_ms: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for a producer, e.g. 'native-int8 (17.8 ms of linears per step; bf16-int8 55.9),
        prefill int8-gemm (21.0 ms per layer; widened 52.3), prefill attention native (3.1 ms per layer; sdpa 8.1)'."""
        line = f"{self.kernel} ({_timings(self.step_ms, self.kernel, 'ms of linears per step')})"
        if self.prefill_ms:
            line += f", prefill {self.prefill} ({_timings(self.prefill_ms, self.prefill, 'ms per layer')})"
        elif self.prefill:
            line += f", prefill {self.prefill}"
        if self.prefill_attention_ms:
            line += (f", prefill attention {self.prefill_attention} "
                     f"({_timings(self.prefill_attention_ms, self.prefill_attention, 'ms per layer')})")
        return line


def _timings(milliseconds: dict[str, float], chosen: str, unit: str) -> str:
    """'12.0 <unit>; other 30.1' for the chosen entry first, then the rest."""
    others = "; ".join(f"{name} {ms:.1f}" for name, ms in milliseconds.items() if name != chosen)
    mine = milliseconds.get(chosen)
    timing = f"{mine:.1f} {unit}" if mine is not None else "not timed"
    return timing + (f"; {others}" if others else "")


def cpu_identity() -> CpuIdentity:
    arch = platform.machine() or "unknown"
    model, flags = _cpu_model_and_flags()
    caps = tuple((name, os.environ[name]) for name in CAP_VARIABLES if os.environ.get(name))
    flags = _capped(flags, dict(caps))
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "?"
    return CpuIdentity(arch, model, tuple(flag for flag in KERNEL_FLAGS if flag in flags), torch_version, caps)


def _capped(flags: set[str], caps: dict[str, str]) -> set[str]:
    """The flags PyTorch's kernels may use under the capping variables (an AVX2 cap hides AVX-512 and AMX)."""
    values = {value.upper() for value in caps.values()}
    if values & {"AVX2", "AVX", "DEFAULT", "SSE41", "SSE42"}:
        return {flag for flag in flags if not flag.startswith(("avx512", "amx", "avx_vnni"))}
    return flags


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            return _parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    if sys.platform == "darwin":
        return _darwin_model_and_flags()
    return platform.processor() or "unknown", set()


def _parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    model, flags = "", set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif name in ("flags", "features") and not flags:
            flags = set(value.split())
        elif name == "cpu part" and not model:
            model = f"Arm part {value.strip()}"
    return model or "unknown", flags


def _darwin_model_and_flags() -> tuple[str, set[str]]:
    def sysctl(name: str) -> str:
        try:
            done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    flags = {"asimd"} if platform.machine() == "arm64" else set()
    for feature, flag in (("FEAT_DotProd", "asimddp"), ("FEAT_I8MM", "i8mm"), ("FEAT_BF16", "bf16")):
        if sysctl(f"hw.optional.arm.{feature}") == "1":
            flags.add(flag)
    return sysctl("machdep.cpu.brand_string") or "Apple", flags


def _cache_path() -> Path:
    return paths.cache_dir() / CACHE_FILE


def _read_all() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_choice(identity: CpuIdentity, model_key: str) -> KernelChoice | None:
    """The choice measured before for this CPU identity and model, if any."""
    entry = _read_all().get(identity.key, {}).get(model_key)
    if not isinstance(entry, dict):
        return None
    try:
        return KernelChoice(**entry)
    except TypeError:  # written by another version of Segue: measure again
        return None


def save_choice(identity: CpuIdentity, model_key: str, choice: KernelChoice) -> None:
    data = _read_all()
    choice.measured_at = choice.measured_at or time.strftime("%Y-%m-%d %H:%M")
    choice.cpu = identity.model
    data.setdefault(identity.key, {})[model_key] = asdict(choice)
    with replacing(_cache_path()) as temporary:
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")


def choices_for_this_cpu() -> dict[str, KernelChoice]:
    """Every model's measured choice on this CPU identity (for `segue models`)."""
    found = {}
    for model_key, entry in _read_all().get(cpu_identity().key, {}).items():
        with contextlib.suppress(TypeError):
            found[model_key] = KernelChoice(**entry)
    return found
