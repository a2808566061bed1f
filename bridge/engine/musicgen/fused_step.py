"""A decoder layer's linear with what surrounds it in a step: the input's LayerNorm, the GELU, the residual.

In a fast-mode step each of those was a PyTorch op on a few thousand numbers, dispatched on one
thread: `F.gelu` on fc1's 2 x 4096 outputs took 18-58 us, a LayerNorm ~11 us, a residual sum ~6 us,
~5 of them per layer and ~120 a step (torch.profiler, musicgen-small, AVX2 EPYC). With the
`native-int8` kernel the whole of `residual + gelu(linear(norm(x)))` is one call
(native/int8_rows.c's segue_int8_rows_fused: LayerNorm moments in double, the GELU as PyTorch's AVX2
kernel computes it, to float rounding of PyTorch's ops). Every other kernel, a prefill's many rows and
other dtypes run the same maths as PyTorch ops.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bridge.engine.musicgen.native_int8 import FEW_ROWS, NativeInt8Linear


@dataclass
class LayerNorm:
    """A LayerNorm's parameters: applied as F.layer_norm, or inside a native call through `pointers`."""

    weight: torch.Tensor
    bias: torch.Tensor
    eps: float
    # (weight, bias, eps) as the native call takes them; None where it cannot (not fp32 and contiguous on the CPU)
    pointers: tuple[int, int, float] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        native = all(part.dtype == torch.float32 and part.is_contiguous() and part.device.type == "cpu"
                     for part in (self.weight, self.bias))
        self.pointers = (self.weight.data_ptr(), self.bias.data_ptr(), self.eps) if native else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)

    @classmethod
    def of(cls, module: torch.nn.LayerNorm) -> "LayerNorm":
        return cls(module.weight, module.bias, module.eps)


def linear_around(linear, x: torch.Tensor, norm: LayerNorm | None = None, gelu: bool = False,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """`residual + gelu(linear(norm(x)))`, each part only where given."""
    if _fusable(linear, x, norm, residual):
        return linear.fused(x, None if norm is None else norm.pointers, gelu, residual)
    out = linear(x if norm is None else norm(x))
    if gelu:
        out = F.gelu(out)
    return out if residual is None else residual + out


def _fusable(linear, x: torch.Tensor, norm: LayerNorm | None, residual: torch.Tensor | None) -> bool:
    # a step's ~145 calls: cheap checks only (each PyTorch attribute ~0.1-0.5 us)
    return (type(linear) is NativeInt8Linear and x.dtype == torch.float32 and x.numel() <= FEW_ROWS * x.shape[-1]
            and (norm is None or norm.pointers is not None)
            and (residual is None or (residual.dtype == torch.float32
                                      and residual.numel() == x.numel() // x.shape[-1] * linear.out_features)))
