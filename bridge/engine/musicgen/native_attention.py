"""A fast-mode step's self-attention in one native call: cache write, scores, softmax and sum per layer.

A one-token step attends with ~10 small PyTorch ops per layer (fast_decoder.one_query_attention and
the cache writes around it); their dispatch, ~100 us per layer at 100 cached positions, outweighed
reading the 1.6 MB of keys and values. `native/one_query_attention.c` does the layer's whole
self-attention in one call, every (row, head) in parallel on the engine's threads. It is built into
the native-int8 library (native_int8.py) and used where that library was built for AVX2 + FMA (its
exp and sums are written for them; elsewhere PyTorch's ops stay). Its sessions keep their keys and
values in fp16 (native_cache_dtype), converted in registers by F16C: a step reads half the bytes, and a
30 s window's cache takes 295 MB instead of 590 for musicgen-small. The same call attends to the text
(`attend_to_text`, the step's cross-attention) where no text token is padding. A prefill's causal
self-attention over its own positions is one call too (`attend_causally`, native/causal_attention.c:
2-2.7x PyTorch's SDPA at an 8 s prompt's 400 positions).
"""

import torch

from bridge.engine.musicgen.native_int8 import library
from bridge.engine.musicgen.step_threads import team_size

AVX2_BUILD = 2  # segue_int8_rows_isa() of a library built with AVX2 + FMA


def native_attention_available() -> bool:
    lib = library()
    return lib is not None and lib.segue_int8_rows_isa() == AVX2_BUILD


def native_cache_dtype(device: torch.device, head_dim: int) -> torch.dtype | None:
    """The key/value cache's dtype for a fast-mode step's native attention on `device`: fp16 (half the
    bytes a step reads, and half the cache's memory) where the kernel takes it, a head of whole 8-lane
    vectors, else fp32; None where native attention does not run (a GPU, no AVX2 build)."""
    if device.type != "cpu" or not native_attention_available():
        return None
    return torch.float16 if head_dim % 8 == 0 else torch.float32


def attend_one_query(
    qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, position: int, heads: int
) -> torch.Tensor:
    """Write the step's keys and values at `position` of one layer's cache, then attend over positions
    0..position.

    qkv: (rows, 1, 3 x hidden) fp32, the fused projection's output (q, k, v, each heads x head dim);
    keys, values: the layer's cache, (rows, heads, capacity, head dim), fp32 or fp16, contiguous.
    Returns (rows, heads, 1, head dim) fp32, a view of a (rows, 1, hidden) result.
    """
    capacity = keys.shape[2]
    if not (keys.is_contiguous() and values.is_contiguous() and keys.dtype == values.dtype
            and keys.dtype in (torch.float32, torch.float16) and qkv.dtype == torch.float32):
        raise ValueError("native attention takes contiguous fp32 or fp16 caches and fp32 projections")
    if not 0 <= position < capacity:
        raise ValueError(f"position {position} is outside the cache's {capacity}")
    half = int(keys.dtype == torch.float16)
    return _attend(qkv, keys, values, heads, position, write=True, half=half, threads=team_size())


def attend_to_text(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A step's cross-attention, unmasked: (rows, 1, heads x head dim) fp32 queries over the text's keys and
    values (rows, heads, tokens, head dim), contiguous fp32 -> (rows, heads, 1, head dim)."""
    # one thread: a dozen tokens are less work than waking another
    return _attend(query, keys, values, keys.shape[1], keys.shape[2] - 1, write=False, half=0, threads=1)


def _attend(projections: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, heads: int, position: int,
            write: bool, half: int, threads: int) -> torch.Tensor:
    """segue_one_query_attention over positions 0..position; `projections` (rows, 1, q[, k, v]) fp32."""
    rows, capacity, head_dim = projections.shape[0], keys.shape[2], keys.shape[3]
    projected = projections.reshape(rows, -1)
    if projected.stride(-1) != 1:
        projected = projected.contiguous()
    out = torch.empty(rows, 1, heads * head_dim)
    status = library().segue_one_query_attention(
        projected.data_ptr(), projected.stride(0), keys.data_ptr(), values.data_ptr(), rows, heads, head_dim,
        capacity, position, int(write), half, out.data_ptr(), out.stride(0), threads,
    )
    if status == 2:
        raise ValueError(f"native attention takes an fp16 cache with heads of whole 8-lane vectors, not {head_dim}")
    if status != 0:
        raise MemoryError("native attention: out of memory for the scores")
    return out.view(rows, 1, heads, head_dim).transpose(1, 2)


CAUSAL_HEAD_MULTIPLE = 16  # causal_attention.c's AVX2 tiles: a head of whole 16-column tiles


def causal_attention_applies(qkv: torch.Tensor, head_dim: int) -> bool:
    """Whether `attend_causally` takes these projections: CPU fp32, a head of whole tiles, the AVX2 build."""
    return (qkv.device.type == "cpu" and qkv.dtype == torch.float32 and head_dim % CAUSAL_HEAD_MULTIPLE == 0
            and native_attention_available())


def attend_causally(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """A prefill's self-attention from position 0: each of `qkv`'s positions (rows, positions, 3 x hidden),
    fp32, the fused projection's output, attends to itself and those before it, every head.
    Returns (rows, heads, positions, head dim), a view of a (rows, positions, hidden) result."""
    rows, positions, width = qkv.shape
    head_dim = width // 3 // heads
    if qkv.stride(-1) != 1:
        qkv = qkv.contiguous()
    out = torch.empty(rows, positions, heads * head_dim)
    status = library().segue_causal_attention(qkv.data_ptr(), qkv.stride(0), qkv.stride(1), rows, positions, heads,
                                              head_dim, out.data_ptr(), team_size())
    if status == -2:
        raise ValueError(f"native causal attention takes heads of whole {CAUSAL_HEAD_MULTIPLE}-column tiles, not {head_dim}")
    if status != 0:
        raise MemoryError("native causal attention: out of memory for its workspace")
    return out.view(rows, positions, heads, head_dim).transpose(1, 2)
