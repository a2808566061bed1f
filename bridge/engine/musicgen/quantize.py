"""Linear layers for the fast decoder: plain weights, or int8 weights for the CPU.

One MusicGen decoder step multiplies two rows (the guided and unguided branch) by every weight
matrix, so on a CPU its speed is set by how many bytes of weights it reads. Int8 weights read a
quarter of fp32's. PyTorch's `_weight_int8pack_mm` CPU kernel multiplies bf16 activations by int8
weights with one scale per output channel; it is several times faster than the fp32 matmul and
than torch.ao's dynamic int8 layers on the machines we measured (bench/engine_speed.py).
"""

import functools

import torch
import torch.nn.functional as F

# Above this many rows (a prefill of an audio prompt), the kernel for a few rows is no longer
# the fast one: the weights are widened to bf16 for one ordinary matmul instead.
FEW_ROWS = 16
QUANTISE_ROWS = 256


class DenseLinear:
    """y = x [W1; W2; ...]^T with the modules' own weights as they are (fp32 on CPU, fp16 on a GPU).

    The matrices are not concatenated: that would copy them, and one matmul per matrix gives the
    reference's exact results.
    """

    def __init__(self, *weights: torch.Tensor) -> None:
        self.weights = weights

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.weights) == 1:
            return F.linear(x, self.weights[0])
        return torch.cat([F.linear(x, weight) for weight in self.weights], dim=-1)

    @property
    def nbytes(self) -> int:
        return sum(weight.numel() * weight.element_size() for weight in self.weights)


class Int8Linear:
    """y = x (s * Q)^T with int8 Q and one bf16 scale s per output channel (symmetric, absmax).

    The scale is rounded to bf16 before the weights are divided by it, so the kernel's bf16 scale
    adds no error of its own: the only error is rounding each weight to one of 255 levels.
    """

    def __init__(self, *weights: torch.Tensor) -> None:
        rows = sum(weight.shape[0] for weight in weights)
        self.weight = torch.empty((rows, weights[0].shape[1]), dtype=torch.int8, device=weights[0].device)
        self.scales = torch.empty(rows, dtype=torch.bfloat16, device=weights[0].device)
        # A few hundred rows at a time: the fp32 temporaries stay small, so quantising a model
        # never holds a second full-size copy of its weights.
        start = 0
        for weight in weights:
            for block in weight.detach().split(QUANTISE_ROWS):
                block = block.float()
                end = start + block.shape[0]
                scales = (block.abs().amax(dim=1) / 127.0).clamp(min=1e-12).to(torch.bfloat16)
                self.scales[start:end] = scales
                self.weight[start:end] = torch.round(block / scales.float()[:, None]).clamp_(-127, 127)
                start = end

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).to(torch.bfloat16)
        if rows.shape[0] <= FEW_ROWS:
            out = torch.ops.aten._weight_int8pack_mm(rows, self.weight, self.scales)
        else:
            out = F.linear(rows, self.weight.to(torch.bfloat16)) * self.scales
        return out.to(x.dtype).reshape(*shape[:-1], -1)

    def dequantized(self) -> torch.Tensor:
        return self.weight.float() * self.scales.float()[:, None]

    @property
    def nbytes(self) -> int:
        return self.weight.numel() + self.scales.numel() * 2


@functools.cache
def int8_kernel_available() -> bool:
    """Whether this PyTorch build has the int8 weight CPU kernel (added in 2.3)."""
    try:
        x = torch.zeros((1, 32), dtype=torch.bfloat16)
        torch.ops.aten._weight_int8pack_mm(x, torch.zeros((8, 32), dtype=torch.int8), torch.ones(8, dtype=torch.bfloat16))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True
