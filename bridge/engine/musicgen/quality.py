"""Quality modes: what "exact" and "fast" run on each device."""

import torch

from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.quantize import int8_kernel_available

QUALITIES = ("exact", "fast")


def resolve_quality(quality: str) -> str:
    """'auto' is 'fast' on every device."""
    return "fast" if quality == "auto" else quality


def precision_for(quality: str, device: torch.device) -> str:
    """int8 weights for fast generation on a CPU; on a GPU both run the weights as loaded (fp16)."""
    if resolve_quality(quality) == "fast" and device.type == "cpu" and int8_kernel_available():
        return "int8"
    return "native"


def graphed_for(quality: str, device: torch.device) -> bool:
    """Fast generation on CUDA replays each step as a captured CUDA graph."""
    return resolve_quality(quality) == "fast" and device.type == "cuda"


def describe_precision(loaded: LoadedModel, precision: str) -> str:
    """What a producer sees next to the quality mode, e.g. 'int8' or 'fp32'."""
    if precision == "int8":
        return "int8"
    return str(loaded.dtype).removeprefix("torch.").replace("float32", "fp32").replace("float16", "fp16")
