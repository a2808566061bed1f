"""A prefill's matmuls in integer arithmetic: int8 weights times ~16-bit activations, as int8 x int8.

An audio prompt's prefill multiplies hundreds of rows by every weight matrix, so arithmetic, not
bytes, sets its speed. Where the CPU has int8 dot products that sum in int32 (AVX-512 VNNI,
AVX-VNNI on Intel's laptop chips since 12th gen, AMX), `torch._int_mm` (oneDNN) does several times
the multiply-adds of an fp32 GEMM: on a 2-core EPYC (Zen 4, AVX-512 VNNI), 800 rows by a 1024 x
4096 int8 matrix took 8 ms against fp32's 40.

Activations rounded to 8 bits (one scale per row) broke the KL bound at musicgen-small's full
depth (0.0105 nats against 0.01), so each row also carries its rounding residual, magnified 254x
and rounded to 8 bits again, as a second row of the same call: activations of ~16 bits, at twice
the rows. The sums are exact integers and every row has its own scales, so a row's result does not
depend on the other rows of the call: the guided and unguided rows of a prompt give the same bits
prefilled together or apart, prepared ahead or not.

Without VNNI (AVX2 alone), oneDNN either shifts int8 activations to uint8 and adds pairs of
products in int16 (`vpmaddubsw`), which saturates for full-range weights (seen on a Zen 4 capped to
AVX2: results wrong by orders of magnitude), or sums exactly but slowly (a Zen 3 with AVX2 alone: 6 s
for one decoder layer's linears at an 8 s prompt, against 0.11 s in fp32). `int8_gemm_offered` is
the path's gate: sums found exact (`int8_gemm_available` tries extreme values once per process) on
a CPU with an int8 dot product (VNNI, AVX-VNNI, AMX on x86; Arm's are left to the timing), so the
kernel choice (kernels.py) never times a path that is wrong or hopeless.
"""

import functools

import torch

from bridge.engine.musicgen.step_threads import on_every_thread

RESIDUAL_GAIN = 254.0  # a residual is at most half a step: x 254 spans the same 127 levels


@functools.cache
def int8_gemm_available() -> bool:
    """Whether `torch._int_mm` sums full-range int8 exactly here (int32 accumulation)."""
    activations = torch.full((32, 64), 127, dtype=torch.int8)
    activations[1::2] = -127
    weights = torch.full((64, 32), 127, dtype=torch.int8)
    weights[:, 1::2] = -127
    try:
        found = torch._int_mm(activations, weights)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.equal(found.double(), activations.double() @ weights.double())


@functools.cache
def int8_gemm_offered() -> bool:
    """Whether this path is a prefill candidate here: exact sums, and int8 dot products to make them fast
    (once per process, as the probe: every set_prefill_path asks, and the answer reads /proc/cpuinfo)."""
    from bridge.engine.cpu_kernels import cpu_identity

    identity = cpu_identity()
    dot_products = identity.is_arm or identity.has("avx512_vnni", "avx_vnni", "amx_int8")
    return dot_products and int8_gemm_available()


class Int8Gemm:
    """x W^T for many rows of x, with W ~ scales * Q (int8, one scale per output channel)."""

    def __init__(self, quantised: torch.Tensor, scales: torch.Tensor) -> None:
        """`quantised` (out, in) int8 in [-127, 127], kept as it is; `scales` (out,)."""
        self.weight = quantised.contiguous()
        self.scales = scales.float()

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """(rows, in) float -> (rows, out) fp32."""
        rows = rows.float()
        count = rows.shape[0]
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_(min=1e-30).div_(127.0)
        coarse = torch.round(rows / scale)
        fine = torch.round((rows - coarse * scale).mul_(RESIDUAL_GAIN / scale))  # within [-127, 127]
        both = torch.cat([coarse, fine]).to(torch.int8)
        sums = on_every_thread(torch._int_mm, both, self.weight.t()).float()
        out = sums[:count].mul_(scale).add_(sums[count:].mul_(scale / RESIDUAL_GAIN))
        return out.mul_(self.scales)
