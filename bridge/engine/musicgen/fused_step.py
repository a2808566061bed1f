"""A decoder layer's linear with what surrounds it in a step: the input's LayerNorm, the GELU, the residual.

In a fast-mode step each of those was a PyTorch op on a few thousand numbers, dispatched on one
thread: `F.gelu` on fc1's 2 x 4096 outputs took 18-58 us, a LayerNorm ~11 us, a residual sum ~6 us,
~5 of them per layer and ~120 a step (torch.profiler, musicgen-small, AVX2 EPYC). With the
`native-int8` kernel the whole of `residual + gelu(linear(norm(x)))` is one call
(native/int8_rows.c's segue_int8_rows_fused: LayerNorm moments in double, the GELU as PyTorch's AVX2
kernel computes it, to float rounding of PyTorch's ops). Every other kernel, a prefill's many rows and
other dtypes run the same maths as PyTorch ops.
"""

from typing import Protocol

import torch
import torch.nn.functional as F

from bridge.engine.musicgen.native_int8 import FEW_ROWS, NativeInt8Linear


class LayerNormParameters(Protocol):
    weight: torch.Tensor
    bias: torch.Tensor
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def linear_around(linear, x: torch.Tensor, norm: LayerNormParameters | None = None, gelu: bool = False,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """`residual + gelu(linear(norm(x)))`, each part only where given."""
    if _fusable(linear, x, norm, residual):
        return linear.fused(x, None if norm is None else norm.weight, None if norm is None else norm.bias,
                            0.0 if norm is None else norm.eps, gelu, residual)
    out = linear(x if norm is None else norm(x))
    if gelu:
        out = F.gelu(out)
    return out if residual is None else residual + out


def _fusable(linear, x: torch.Tensor, norm: LayerNormParameters | None, residual: torch.Tensor | None) -> bool:
    if not isinstance(linear, NativeInt8Linear) or x.dtype != torch.float32 or x.numel() > FEW_ROWS * x.shape[-1]:
        return False
    if norm is not None and not all(part.dtype == torch.float32 and part.is_contiguous() for part in (norm.weight, norm.bias)):
        return False
    return residual is None or (residual.dtype == torch.float32 and residual.numel() == x.numel() // x.shape[-1] * linear.out_features)
