"""Linear layers for the fast decoder: plain weights, or int8 weights run by one of several CPU kernels.

One MusicGen decoder step multiplies two rows (the guided and unguided branch) by every weight
matrix, so on a CPU its speed is set by how many bytes of weights it reads; int8 weights read a
quarter of fp32's. Which int8 kernel reads them fastest depends on the CPU (bf16 arithmetic is
native only on recent AVX-512 and Arm chips; int8 dot products are native with VNNI), so there
are several, all with the same weights (symmetric, absmax, one scale per output channel), and
bridge/engine/musicgen/kernels.py picks one per machine by measurement. Each layer also serves
the prefill (hundreds of rows at once), where a GEMM, not the few-row kernel, is what runs fast.
"""

import functools
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from bridge.engine.musicgen.int8_gemm import Int8Gemm
from bridge.engine.musicgen.native_int8 import FEW_ROWS, NativeInt8Linear
from bridge.engine.musicgen.step_threads import on_every_thread

QUANTISE_ROWS = 256


class DenseLinear:
    """y = x [W1; W2; ...]^T with the modules' own weights as they are (fp32 on CPU, fp16 on a GPU).

    The matrices are not concatenated: that would copy them, and one matmul per matrix gives the
    reference's exact results.
    """

    kernel = "dense"

    def __init__(self, *weights: torch.Tensor) -> None:
        self.weights = weights

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.weights) == 1:
            return on_every_thread(F.linear, x, self.weights[0])
        return torch.cat([on_every_thread(F.linear, x, weight) for weight in self.weights], dim=-1)

    @property
    def nbytes(self) -> int:
        return sum(weight.numel() * weight.element_size() for weight in self.weights)


def quantise_per_channel(weights: tuple[torch.Tensor, ...], scale_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 Q and scales s (one per output row, in `scale_dtype`) with W ~ s * Q, for the stacked weights.

    The scale is rounded to `scale_dtype` before the weights are divided by it, so a kernel that
    reads the scale in that dtype adds no error of its own: the only error is rounding each weight
    to one of 255 levels. A few hundred rows at a time, so quantising a model never holds a second
    full-size fp32 copy of its weights.
    """
    rows = sum(weight.shape[0] for weight in weights)
    device = weights[0].device
    quantised = torch.empty((rows, weights[0].shape[1]), dtype=torch.int8, device=device)
    scales = torch.empty(rows, dtype=scale_dtype, device=device)
    start = 0
    for weight in weights:
        for block in weight.detach().split(QUANTISE_ROWS):
            block = block.float()
            end = start + block.shape[0]
            block_scales = (block.abs().amax(dim=1) / 127.0).clamp(min=1e-12).to(scale_dtype)
            scales[start:end] = block_scales
            quantised[start:end] = torch.round(block / block_scales.float()[:, None]).clamp_(-127, 127)
            start = end
    return quantised, scales


class Int8Linear:
    """y = x (s * Q)^T by PyTorch's `_weight_int8pack_mm`: bf16 activations times int8 weights.

    Fast where bf16 is native (AVX-512 bf16, AMX, Arm bf16); elsewhere PyTorch emulates bf16. A
    prefill runs as int8 x int8 (int8_gemm.py) or as one ordinary GEMM of the widened weights: bf16
    where it is native, fp32 elsewhere (emulated bf16 GEMMs ran 10x slower than fp32 on an AVX2
    machine); `prefill` says which, as the kernel choice measured.
    """

    kernel = "bf16-int8"
    prefill_paths = ("int8-gemm", "widened")

    def __init__(self, *weights: torch.Tensor, wide_dtype: torch.dtype = torch.bfloat16) -> None:
        self.weight, self.scales = quantise_per_channel(weights, torch.bfloat16)
        self.wide_dtype = wide_dtype
        self.prefill = "widened"  # one of prefill_paths: chosen per machine by measurement (kernels.py)
        self._gemm: Int8Gemm | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        if rows.shape[0] <= FEW_ROWS:
            out = on_every_thread(torch.ops.aten._weight_int8pack_mm, rows.to(torch.bfloat16), self.weight, self.scales)
        elif self.prefill == "int8-gemm":
            if self._gemm is None:
                self._gemm = Int8Gemm(self.weight, self.scales)
            out = self._gemm(rows)
        else:
            wide = self.wide_dtype
            out = F.linear(rows.to(wide), self.weight.to(wide)) * self.scales.to(wide)
        return out.to(x.dtype).reshape(*shape[:-1], -1)

    def dequantized(self) -> torch.Tensor:
        return self.weight.float() * self.scales.float()[:, None]

    @property
    def nbytes(self) -> int:
        return self.weight.numel() + self.scales.numel() * 2


class DynamicInt8Linear:
    """y = x (s * Q)^T as an int8 x int8 GEMM (PyTorch's quantized engine: FBGEMM on x86, QNNPACK on Arm).

    The engine quantises the activations on each call to 8 bits (per tensor, asymmetric), which
    alone doubled the layer's output error and broke the KL bound. So each call also feeds the
    rounding residual of those activations, magnified to span the same range, as extra rows of the
    same GEMM: the weights are still read once, and the activations reach ~15 bits, so the output
    error is the weights' rounding alone (bench/kernels.py and tests/test_engine_kernels.py measure
    both). The residual is exact because `torch.quantize_per_tensor_dynamic` chooses the same
    quantisation parameters as the engine does, and the residual rows stay inside the activations'
    own range, so they do not change them.

    Without VNNI, FBGEMM's AVX2 kernel adds pairs of uint8 x int8 products in int16, which
    saturates for full-range activations; `reduce_range` keeps them to 7 bits so it cannot (the
    full-range variant is offered only on CPUs with VNNI, which accumulate in int32).
    """

    def __init__(self, *weights: torch.Tensor, reduce_range: bool = True) -> None:
        quantised, scales = quantise_per_channel(weights, torch.float32)
        zero_points = torch.zeros(quantised.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # PyTorch flags its quantized tensors as deprecated; they still run
            warnings.simplefilter("ignore", UserWarning)
            packed_input = torch._make_per_channel_quantized_tensor(quantised, scales.double(), zero_points, 0)
            self.packed = torch.ops.quantized.linear_prepack(packed_input, None)
        self.reduce_range = reduce_range
        self.kernel = "dynamic-int8-7bit" if reduce_range else "dynamic-int8"
        self.row_sums = quantised.sum(dim=1, dtype=torch.int32).float() * scales  # W @ 1, for the residual's offset
        self._nbytes = quantised.numel() + scales.numel() * 4  # the packed copy is the only one kept

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        low, high = (float(value) for value in torch.aminmax(rows))
        low, high = min(low, 0.0), max(high, 0.0)
        if high == low:
            return x.new_zeros(*shape[:-1], self.row_sums.shape[0])
        coarse = torch.quantize_per_tensor_dynamic(rows, torch.quint8, self.reduce_range)
        gain = 0.98 * (high - low) / coarse.q_scale()  # residual (at most half a step) spread over the range
        centre = (high + low) / 2  # residual rows sit around the middle of the range, inside it
        residual = torch.add(torch.full_like(rows, centre), rows - coarse.dequantize(), alpha=gain)
        out = on_every_thread(torch.ops.quantized.linear_dynamic, torch.cat([rows, residual]), self.packed, self.reduce_range)
        count = rows.shape[0]
        fine = torch.add(out[count:], self.row_sums, alpha=-centre)
        return out[:count].add_(fine, alpha=1.0 / gain).to(x.dtype).reshape(*shape[:-1], -1)

    def dequantized(self) -> torch.Tensor:
        weight, _ = torch.ops.quantized.linear_unpack(self.packed)
        return weight.dequantize()

    @property
    def nbytes(self) -> int:
        return self._nbytes


class OnnxInt8Linear:
    """y = x W^T by ONNX Runtime's `MatMulNBits` (the optional `onnx` extra): int8 weights in blocks of 32.

    Each block of 32 inputs of an output row has its own fp32 scale (finer than one per row, so less
    weight error), and with accuracy level 4 ONNX Runtime multiplies int8 activations, quantised per
    block, by them with int8 dot products; one session per layer, its threads waiting passively.
    """

    kernel = "onnx-int8"
    BLOCK = 32

    def __init__(self, *weights: torch.Tensor, bits: int = 8) -> None:
        """`bits=4` only for bench/kernels.py: 4-bit blocks failed the KL bound by 10x their int8 error."""
        import onnxruntime
        from onnx import TensorProto, helper

        weight = torch.cat([w.detach().float() for w in weights])  # one layer's fp32 copy, briefly
        out_features, in_features = weight.shape
        blocks = weight.view(out_features, in_features // self.BLOCK, self.BLOCK)
        middle = 2 ** (bits - 1)  # the default zero point
        scales = (blocks.abs().amax(-1) / (middle - 1)).clamp(min=1e-12)
        levels = (torch.round(blocks / scales[..., None]).clamp(1 - middle, middle - 1) + middle).to(torch.uint8)
        if bits == 4:  # two per byte, the first in the low nibble
            levels = levels[..., 0::2] | (levels[..., 1::2] << 4)
        node = helper.make_node(
            "MatMulNBits", ["x", "w", "s"], ["y"], domain="com.microsoft",
            K=in_features, N=out_features, bits=bits, block_size=self.BLOCK, accuracy_level=4,
        )
        graph = helper.make_graph(
            [node], "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, in_features])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, out_features])],
            initializer=[
                helper.make_tensor("w", TensorProto.UINT8, list(levels.shape), levels.numpy().tobytes(), raw=True),
                helper.make_tensor("s", TensorProto.FLOAT, [scales.numel()], scales.numpy().tobytes(), raw=True),
            ],
        )
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=9)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # like the engine's OpenMP
        options.enable_cpu_mem_arena = False  # an arena per session held ~50 MB each (one session per layer)
        # From a file, not bytes: a session made from bytes keeps them, a third copy of the weights.
        with tempfile.TemporaryDirectory(prefix="segue-onnx-") as folder:
            path = Path(folder) / "linear.onnx"
            path.write_bytes(model.SerializeToString())
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.in_features = in_features
        self._nbytes = levels.numel() + scales.numel() * 4

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float().contiguous()
        out = self.session.run(None, {"x": rows.numpy()})[0]
        return torch.from_numpy(out).to(x.dtype).reshape(*shape[:-1], -1)

    def dequantized(self) -> torch.Tensor:
        """The weights as the kernel sees them: identity rows quantise exactly, so x = I gives W^T."""
        return self(torch.eye(self.in_features)).T.contiguous()

    @property
    def nbytes(self) -> int:
        return self._nbytes


QuantisedLinear = Int8Linear | DynamicInt8Linear | OnnxInt8Linear | NativeInt8Linear
KERNELS = ("bf16-int8", "dynamic-int8", "dynamic-int8-7bit", "onnx-int8", "native-int8")


def make_linear(kernel: str, *weights: torch.Tensor, native_bf16: bool = True) -> DenseLinear | QuantisedLinear:
    """The linear layer of `kernel` ("dense" or one of KERNELS) over the stacked `weights`."""
    if kernel == "dense":
        return DenseLinear(*weights)
    if kernel == "bf16-int8":
        return Int8Linear(*weights, wide_dtype=torch.bfloat16 if native_bf16 else torch.float32)
    if kernel in ("dynamic-int8", "dynamic-int8-7bit"):
        return DynamicInt8Linear(*weights, reduce_range=kernel == "dynamic-int8-7bit")
    if kernel == "onnx-int8":
        return OnnxInt8Linear(*weights)
    if kernel == "native-int8":
        return NativeInt8Linear(*weights, wide_dtype=torch.bfloat16 if native_bf16 else torch.float32)
    raise ValueError(f"unknown kernel {kernel!r}; one of dense, {', '.join(KERNELS)}")


@functools.cache
def int8_kernel_available() -> bool:
    """Whether this PyTorch build has the int8 weight CPU kernel (added in 2.3)."""
    try:
        x = torch.zeros((1, 32), dtype=torch.bfloat16)
        torch.ops.aten._weight_int8pack_mm(x, torch.zeros((8, 32), dtype=torch.int8), torch.ones(8, dtype=torch.bfloat16))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


@functools.cache
def dynamic_int8_available() -> bool:
    """Whether this PyTorch build has a quantized engine with dynamic int8 linears (FBGEMM, x86 or QNNPACK)."""
    engines = [engine for engine in torch.backends.quantized.supported_engines if engine != "none"]
    if not engines:
        return False
    if torch.backends.quantized.engine == "none":
        torch.backends.quantized.engine = engines[0]
    try:
        DynamicInt8Linear(torch.ones((8, 32)))(torch.ones((1, 32)))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


@functools.cache
def onnx_int8_available() -> bool:
    """Whether ONNX Runtime and onnx are installed (the optional `onnx` extra) and run MatMulNBits here."""
    try:
        OnnxInt8Linear(torch.ones((8, 32)))(torch.ones((1, 32)))
    except ImportError:
        return False
    except Exception:  # an ONNX Runtime build without MatMulNBits, or one that fails on this CPU
        return False
    return True
