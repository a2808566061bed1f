"""Reading a step's next weights into the cache while the engine runs its small ops between kernel calls.

Between two of a fast-mode step's ~145 weight-reading calls, the engine spends ~60 us on one core
(norms, GELU, residual adds, Python), and the memory reads nothing. `native/weight_prefetch.c` has a
thread read the weights of the calls that come next during those gaps (sleeping while a native call
computes), so each call finds its first megabytes in the last-level cache. This module tells it the
order: a decoder's native-int8 weights as a step reads them. One decoder at a time (the one that
started a window last); its weights stay alive until it is gone and the thread has let go of them.

Used where the step kernel is native-int8 on Linux (the thread sleeps on a futex) with two or more
threads in the team (with one, the gaps have no idle core to read on); `SEGUE_WEIGHT_PREFETCH=0` turns
it off. Results are the same bits either way: it only reads.
"""

import ctypes
import os
import weakref
from collections.abc import Sequence
from pathlib import Path

import torch

from bridge.engine.musicgen.native_int8 import NativeInt8Linear, library

FALLBACK_CACHE_BYTES = 8 << 20
_current: list[object] = [None]  # a token of the order the library holds now


def last_level_cache_bytes() -> int:
    """The largest cache's size from Linux's sysfs (e.g. '32768K'), else 8 MB."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        digits = text.rstrip("KM")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=FALLBACK_CACHE_BYTES)


def wanted(threads: int) -> bool:
    return os.environ.get("SEGUE_WEIGHT_PREFETCH", "1") != "0" and threads >= 2


def prefetch_in_step_order(owner: object, linears: Sequence[NativeInt8Linear]) -> bool:
    """Have the library read `linears`' weights ahead, in this order, for as long as `owner` lives (or
    until another owner's order replaces it). True if the reading thread runs."""
    lib = library()
    if lib is None or not linears:
        return False
    if _current[0] is not None and _current[0] == id(owner):
        return True
    packed = [linear.packed for linear in linears]  # kept alive by the finalizer until the order is cleared
    buffers = (ctypes.c_void_p * len(packed))(*(tensor.data_ptr() for tensor in packed))
    sizes = (ctypes.c_int64 * len(packed))(*(tensor.numel() for tensor in packed))
    status = lib.segue_prefetch_order(buffers, sizes, len(packed), last_level_cache_bytes() // 2)
    if status != 0:
        _current[0] = None
        return False
    _current[0] = id(owner)
    weakref.finalize(owner, _clear_if_current, id(owner), packed)
    return True


def stop_prefetching() -> None:
    """Clear the order: returns once the thread has ended (no read of the weights is under way)."""
    lib = library()
    if lib is not None:
        lib.segue_prefetch_order(None, None, 0, 0)
    _current[0] = None


def bytes_read_ahead() -> int:
    """Bytes the thread has read ahead in this process (for tests and the bench)."""
    lib = library()
    return 0 if lib is None else int(lib.segue_prefetch_bytes_read())


def _clear_if_current(token: int, packed: list[torch.Tensor]) -> None:
    if _current[0] == token:
        stop_prefetching()
    del packed  # the weights may go now
