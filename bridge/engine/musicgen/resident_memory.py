"""Giving memory back to the OS: the checkpoint's fp32 pages once int8 copies exist, and the heap's free pages."""

import contextlib
import ctypes
import mmap
import sys

import torch


def drop_resident_pages(tensors: list[torch.Tensor]) -> None:
    """Let the OS drop the memory pages of weights mapped from a checkpoint file (Linux only).

    Weights are memory-mapped from the safetensors file. Once quantised copies exist, the fp32 pages
    need not stay in RAM: they are mapped privately from an unchanged file, so dropping them only
    means they are read from the file again if the exact path needs them. Loaded weights must
    therefore never be changed in place: a changed private page would read back as the file's.
    """
    if sys.platform != "linux" or not tensors:
        return
    mapped = _checkpoint_mappings()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = mmap.PAGESIZE
    for tensor in tensors:
        if tensor.device.type != "cpu":
            continue
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        if not any(low <= start and end <= high for low, high in mapped):
            continue
        first, last = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
        if last > first:
            libc.madvise(first, last - first, 4)  # MADV_DONTNEED


def return_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc keeps them after big temporaries otherwise)."""
    if sys.platform == "linux":
        with contextlib.suppress(AttributeError, OSError):  # not glibc (e.g. musl)
            ctypes.CDLL(None).malloc_trim(0)


def _checkpoint_mappings() -> list[tuple[int, int]]:
    """Address ranges of private file mappings: where safetensors maps checkpoints (in the Hugging
    Face cache the file is a blob without the .safetensors suffix)."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/") and fields[1][0] == "r" and fields[1][3] == "p":
                low, high = (int(part, 16) for part in fields[0].split("-"))
                ranges.append((low, high))
    return ranges
