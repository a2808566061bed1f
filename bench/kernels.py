"""Which kernel multiplies MusicGen's decoder weights fastest on this CPU? (A micro-benchmark, not a test.)

    python bench/kernels.py [--layers 24] [--rows 2] [--json]

One decoder step of musicgen-small runs its 192 linear layers (24 layers x self-attention q, k, v,
out, cross-attention q, out, fc1, fc2; the cross-attention ones for the guided row only) and the
four codebook heads on two rows (guided and unguided). Each kernel below gets random weights of
those shapes and is timed over whole steps (weights far larger than the caches, as in the real
model); it prints ms per step, the steps/s if the linears were all, the bytes of weights read per
step and the resulting GB/s, and each kernel's output error relative to fp32 on one fc2 layer
(int8 weight rounding alone gives ~0.009). `--rows 802` times a prefill of an 8 s audio prompt instead.

Kernels: PyTorch's own (fp32; bf16 x int8 `_weight_int8pack_mm`, Segue's `bf16-int8`; fp32 x int8;
FBGEMM/QNNPACK dynamic int8 as `quantize_dynamic` runs it, and Segue's `dynamic-int8(-7bit)` with
its residual rows; `_int_mm` on int8 activations, torchao's int8-dynamic-activation scheme;
`_weight_int4pack_mm_for_cpu` int4 group 32; `_dyn_quant_matmul_4bit`, the KleidiAI path on Arm),
Segue's own `native-int8` (bridge/engine/musicgen/native/int8_rows.c, built here with the C compiler)
and, when installed, ONNX Runtime's `MatMulNBits` (8 and 4 bits, int8 compute) and OpenVINO's
compressed-weight MatMul (int8 per channel, int4 group 32; its CPU plugin fuses the Convert/Multiply
weight pattern into its FullyConnected kernel), in fp32 and, where the CPU has it, bf16 inference
precision, each with and without its dynamic int8 activations.
The CPU flags and load average are printed with the figures; run the AVX2 paths on an AVX-512
machine with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2.
"""

import argparse
import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.engine.cpu_kernels import cpu_identity  # noqa: E402
from bridge.engine.musicgen.quantize import (  # noqa: E402
    OnnxInt8Linear,
    make_linear,
    onnx_int8_available,
    quantise_per_channel,
)

HIDDEN, FFN, HEADS, VOCAB = 1024, 4096, 4, 2048
Kernel = Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]  # weight -> (x -> y)


def decoder_shapes(layers: int) -> list[tuple[int, int, bool]]:
    """(out, in, guided row only) of every linear in one step."""
    one = [(HIDDEN, HIDDEN, False)] * 4 + [(HIDDEN, HIDDEN, True)] * 2 + [(FFN, HIDDEN, False), (HIDDEN, FFN, False)]
    return one * layers + [(HEADS * VOCAB, HIDDEN, False)]


def segue(kernel: str) -> Kernel:
    return lambda weight: make_linear(kernel, weight, native_bf16=cpu_identity().has("avx512_bf16", "amx_bf16", "bf16"))


def fp32(weight):
    return lambda x: F.linear(x, weight)


def fp32_int8(weight):
    quantised, scales = quantise_per_channel((weight,), torch.float32)
    return lambda x: torch.ops.aten._weight_int8pack_mm(x, quantised, scales)


def dynamic_plain(weight):
    """FBGEMM/QNNPACK dynamic int8 without residual rows: what torch.ao's quantize_dynamic runs."""
    layer = make_linear("dynamic-int8-7bit", weight)
    return lambda x: torch.ops.quantized.linear_dynamic(x, layer.packed, True)


def int_mm(weight):
    """int8 activations (per row) x int8 weights (per channel) through torch._int_mm."""
    quantised, scales = quantise_per_channel((weight,), torch.float32)
    transposed = quantised.t()

    def run(x):
        x_scales = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        rows = torch.round(x / x_scales).to(torch.int8)
        if rows.shape[0] <= 16:  # _int_mm wants more than 16 rows on some builds: pad
            rows = F.pad(rows, (0, 0, 0, 17 - rows.shape[0]))
        return torch._int_mm(rows, transposed)[: x.shape[0]].float() * x_scales * scales

    return run


def int4_group32(weight, group: int = 32):
    out_features, in_features = weight.shape
    groups = weight.view(out_features, in_features // group, group)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    scales = ((high - low) / 15).clamp(min=1e-9)
    levels = torch.round((groups - low) / scales).clamp(0, 15).to(torch.int32).view(out_features, in_features)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(levels, 2)
    scales_and_zeros = torch.stack([scales.squeeze(-1), (low + 8 * scales).squeeze(-1)], -1)
    scales_and_zeros = scales_and_zeros.transpose(0, 1).contiguous().to(torch.bfloat16)
    return lambda x: torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), packed, group, scales_and_zeros).float()


def kleidiai_4bit(weight, group: int = 32):
    out_features, in_features = weight.shape
    groups = weight.view(out_features, in_features // group, group)
    scales = (groups.abs().amax(-1) / 7).clamp(min=1e-9)
    levels = (torch.round(groups / scales[..., None]).clamp(-8, 7) + 8).to(torch.uint8).view(out_features, in_features)
    nibbles = (levels[:, 1::2] << 4 | levels[:, 0::2]).contiguous()
    packed = torch.ops.aten._dyn_quant_pack_4bit_weight(nibbles, scales, None, group, in_features, out_features)
    return lambda x: torch.ops.aten._dyn_quant_matmul_4bit(x, packed, group, in_features, out_features)


KERNELS: dict[str, Kernel] = {
    "fp32 (nn.Linear)": fp32,
    "bf16 x int8 (Segue bf16-int8)": segue("bf16-int8"),
    "fp32 x int8 _weight_int8pack_mm": fp32_int8,
    "dynamic int8, 7-bit (quantize_dynamic)": dynamic_plain,
    "Segue dynamic-int8-7bit (+residual)": segue("dynamic-int8-7bit"),
    "Segue dynamic-int8 (+residual)": segue("dynamic-int8"),
    "Segue native-int8 (own C, int16 act)": segue("native-int8"),
    "int8 act x int8 _int_mm (torchao-style)": int_mm,
    "bf16 x int4 g32 _weight_int4pack_mm": int4_group32,
    "int4 g32 _dyn_quant_matmul_4bit (KleidiAI)": kleidiai_4bit,
}


def onnxruntime_kernels() -> dict[str, Kernel]:
    """MatMulNBits (com.microsoft), 8 and 4 bits, block 32, int8 compute, if the `onnx` extra is installed."""
    if not onnx_int8_available():
        return {}
    return {
        "Segue onnx-int8 (ORT MatMulNBits 8-bit)": segue("onnx-int8"),
        "ORT MatMulNBits 4-bit": lambda weight: OnnxInt8Linear(weight, bits=4),
    }


def openvino_kernels() -> dict[str, Kernel]:
    """OpenVINO compressed-weight MatMul, one compiled model per linear as ORT's (if `openvino` is installed)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return {}
    kernels: dict[str, Kernel] = {}
    for precision in ("f32", "bf16"):
        for dynamic_group in (0, 32):
            for bits in (8, 4):
                config = {"INFERENCE_PRECISION_HINT": precision, "DYNAMIC_QUANTIZATION_GROUP_SIZE": str(dynamic_group)}
                name = f"OpenVINO int{bits} weights, {precision}{', int8 act' if dynamic_group else ''}"
                kernels[name] = functools.partial(openvino_linear, bits=bits, config=config)
    return kernels


def openvino_linear(weight: torch.Tensor, bits: int, config: dict[str, str]) -> Callable[[torch.Tensor], torch.Tensor]:
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    out_features, in_features = weight.shape
    group = 32 if bits == 4 else in_features
    groups = weight.reshape(out_features, in_features // group, group)
    limit = 2 ** (bits - 1) - 1
    scales = (groups.abs().amax(-1, keepdim=True) / limit).clamp(min=1e-12)
    levels = torch.round(groups / scales).clamp(-limit - 1, limit).to(torch.int8).numpy()
    element = ov.Type.i8 if bits == 8 else ov.Type.i4
    compressed = ops.constant(levels, dtype=element)
    decompressed = ops.multiply(ops.convert(compressed, ov.Type.f32), ops.constant(scales.numpy().astype(np.float32)))
    matrix = ops.reshape(decompressed, ops.constant(np.array([out_features, in_features], dtype=np.int64)), False)
    x = ops.parameter([-1, in_features], ov.Type.f32)
    model = ov.Model([ops.matmul(x, matrix, False, True)], [x])
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def run(rows: torch.Tensor) -> torch.Tensor:
        request.infer({0: rows.numpy()}, share_inputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run


def time_step(layers: list[tuple[Callable, torch.Tensor]], repeats: int) -> float:
    for layer, x in layers:
        layer(x)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for layer, x in layers:
            layer(x)
        best = min(best, time.perf_counter() - started)
    return best


def relative_error(kernel: Kernel, rows: int) -> float:
    torch.manual_seed(1)
    weight, x = torch.randn(HIDDEN, FFN) * 0.02, torch.randn(rows, FFN)
    exact = F.linear(x, weight)
    return float((kernel(weight)(x) - exact).norm() / exact.norm())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=24, help="decoder layers (musicgen-small: 24)")
    parser.add_argument("--rows", type=int, default=2, help="rows per matmul: 2 for a step, ~802 for an 8 s prefill")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated substrings of kernel names to run")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # PyTorch's quantized tensors are flagged deprecated
    torch.manual_seed(0)
    identity = cpu_identity()
    load = os.getloadavg()[0]
    print(f"CPU: {identity.model}; flags: {' '.join(identity.flags)}; PyTorch {torch.__version__} capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads; load average {load:.2f}")
    shapes = decoder_shapes(args.layers)
    print(f"{len(shapes) - 1} linears + heads, {args.rows} rows\n")
    print(f"{'kernel':<46}{'ms/step':>9}{'steps/s':>9}{'MB/step':>9}{'GB/s':>7}{'rel. error':>12}")
    results = {}
    kernels = {**KERNELS, **onnxruntime_kernels(), **openvino_kernels()}
    for name, kernel in kernels.items():
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        try:
            layers = []
            for out_features, in_features, guided_only in shapes:
                rows = max(1, args.rows // 2) if guided_only else args.rows
                layers.append((kernel(torch.randn(out_features, in_features) * 0.02), torch.randn(rows, in_features)))
            seconds = time_step(layers, args.repeats)
            error = relative_error(kernel, args.rows)
        except Exception as failure:  # a kernel this build or CPU lacks: say so and go on
            print(f"{name:<46} not runnable here: {str(failure).splitlines()[0][:60]}")
            continue
        finally:
            layers = []
        weight_bytes = sum(o * i for o, i, _ in shapes) * (4 if name.startswith("fp32 (") else 1)
        weight_bytes //= 2 if "4-bit" in name or "int4" in name else 1  # (block scales not counted)
        results[name] = {"ms_per_step": round(1000 * seconds, 2), "relative_error": round(error, 5)}
        print(f"{name:<46}{1000 * seconds:>9.1f}{1 / seconds:>9.1f}{weight_bytes / 1e6:>9.0f}"
              f"{weight_bytes / seconds / 1e9:>7.1f}{error:>12.4f}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps({"cpu_flags": list(identity.flags), "load_average": load, "rows": args.rows, "kernels": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
