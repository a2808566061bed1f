"""Segue's native kernel library built without ISA flags (its portable C paths, as Arm and pre-AVX2
CPUs compile it), for the tests that hold it to this machine's AVX2 build."""

import ctypes
import subprocess
from importlib import resources
from pathlib import Path

from bridge.engine.musicgen import native_int8


def portable_library(folder: Path) -> ctypes.CDLL:
    """The native sources built in `folder` with this machine's compiler and no ISA flags, bound as
    native_int8 binds its own build."""
    native = resources.files("bridge.engine.musicgen.native")
    sources = [str(native.joinpath(name)) for name in native_int8.SOURCES]
    built = folder / "portable.so"
    subprocess.run([*native_int8.compiler().split(), "-O3", "-shared", "-fPIC", *sources, "-o", str(built), "-lm"],
                   check=True, timeout=120)
    return native_int8._bind(ctypes.CDLL(str(built)))
