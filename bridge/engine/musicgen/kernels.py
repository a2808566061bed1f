"""Which int8 kernel runs fast mode on this CPU: measured on the model's own shapes, checked for faithfulness.

At the first load on a machine (a CPU identity, bridge/engine/cpu_kernels.py), every candidate this
CPU can run is timed on the model's real weights, as many layers as fill more than the CPU's caches,
at one step's shapes (two rows: the guided and the unguided branch). The fastest is then built for
the whole decoder and checked: its teacher-forced next-step distributions, step by step and through
the prefill, must stay within KL_BOUND_NATS of the fp32 decoder's; one that does not is rejected and
the next fastest is checked. The choice is cached with the CPU identity, so later loads only read it.

Candidates (bridge/engine/musicgen/quantize.py):
- x86, any with AVX2: `dynamic-int8-7bit` (FBGEMM int8 GEMM, 7-bit activations, safe without VNNI)
  and `bf16-int8` (bf16 x int8; bf16 is emulated without AVX-512 bf16 or AMX);
- x86 with VNNI (AVX-512 VNNI, AVX-VNNI, AMX): also `dynamic-int8` (full-range activations);
- Arm: `dynamic-int8` (QNNPACK) and `bf16-int8` (PyTorch's NEON/KleidiAI paths where built in);
- anywhere, with the optional `onnx` extra installed: `onnx-int8` (ONNX Runtime's MatMulNBits);
- anywhere a C compiler is found: `native-int8`, Segue's own kernel (bridge/engine/musicgen/native_int8.py),
  built for this CPU at the first load: the fastest on AVX2 machines, where PyTorch's int8 kernels
  read the weights at a third of the memory's speed.
The prefill's path (native-int8's own integer or fp32 GEMMs; int8 x int8 where that is exact and fast
here, int8_gemm.py; or the weights widened for PyTorch's float GEMM) is timed at an 8 s prompt's shapes for the
kernel being checked, and the fastest is checked within the same KL bound (the prefill path's KL is
part of the check), else the next. So is the prefill's causal self-attention, where Segue's native
call runs (native_attention.py): it and PyTorch's SDPA, the faster taken (an AVX-512 machine's SDPA
was never measured against it).
4-bit weights (`_weight_int4pack_mm_for_cpu`, group 32) were measured slower than FBGEMM's int8 on
both x86 columns of bench/kernels.py and ~8x their output error, so they are not offered.
"""

import logging
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bridge.engine.cpu_kernels import CpuIdentity, KernelChoice, cpu_identity, load_choice, save_choice
from bridge.engine.musicgen.fast_decoder import FastDecoder
from bridge.engine.musicgen.int8_gemm import int8_gemm_offered
from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.native_attention import (
    attend_causally,
    causal_attention_applies,
    native_cache_dtype,
)
from bridge.engine.musicgen.native_int8 import native_int8_available
from bridge.engine.musicgen.quantize import (
    OnnxInt8Linear,
    dynamic_int8_available,
    int8_kernel_available,
    make_linear,
    onnx_int8_available,
)
from bridge.engine.musicgen.sampling import encode_text
from bridge.engine.musicgen.step_threads import on_every_thread

KL_BOUND_NATS = 0.01  # mean KL per codebook and position, teacher-forced, to the fp32 decoder
CHECK_POSITIONS = 16
PREFILL_POSITIONS = 400  # an 8 s audio prompt's frames: the prefill paths are timed at one row of it
OWN_PREFILL = "the kernel's own"  # the prefill of a kernel with no paths to choose (FBGEMM's, ONNX Runtime's)
TIMED_BYTES = 64 * 2**20  # time over at least this many int8 weight bytes: more than a CPU's caches
GUIDANCE = 3.0

log = logging.getLogger(__name__)


def native_bf16(identity: CpuIdentity) -> bool:
    return identity.has("avx512_bf16", "amx_bf16", "bf16")


def candidate_kernels(
    identity: CpuIdentity,
    dynamic_ok: bool = True,
    int8pack_ok: bool = True,
    onnx_ok: bool = False,
    native_ok: bool = False,
) -> list[str]:
    """The kernels worth timing on this CPU, given which this PyTorch build (and ONNX Runtime) has,
    and whether Segue's own kernel was built here (a C compiler was found)."""
    names = []
    if dynamic_ok:
        if identity.is_arm:
            names.append("dynamic-int8")
        elif identity.has("avx2"):
            names.append("dynamic-int8-7bit")
            if identity.has("avx512_vnni", "avx_vnni", "amx_int8"):
                names.append("dynamic-int8")
    if int8pack_ok:
        names.append("bf16-int8")
    if onnx_ok:  # MLAS has AVX2, AVX-512 VNNI and Arm NEON/i8mm paths of its own
        names.append("onnx-int8")
    if native_ok:  # AVX2 intrinsics on x86, the compiler's NEON elsewhere
        names.append("native-int8")
    return names


def runnable_candidates(identity: CpuIdentity) -> list[str]:
    """candidate_kernels for what this machine's PyTorch, ONNX Runtime and C compiler provide."""
    return candidate_kernels(
        identity, dynamic_int8_available(), int8_kernel_available(), onnx_int8_available(), native_int8_available()
    )


def fits_onnx_blocks(loaded: LoadedModel) -> bool:
    """MatMulNBits quantises inputs in blocks of 32: every linear's input width must be a multiple."""
    config = loaded.model.decoder.config
    return all(width % OnnxInt8Linear.BLOCK == 0 for width in (config.hidden_size, config.ffn_dim))


def model_key(loaded: LoadedModel) -> str:
    """What a cached choice was measured on: the model, and the step's attention where it is native (its
    fp16 cache is part of the KL check: a choice measured before it is measured again)."""
    config = loaded.model.decoder.config
    key = f"{loaded.model_id} ({config.num_hidden_layers}x{config.hidden_size})"
    dtype = native_cache_dtype(loaded.device, config.hidden_size // config.num_attention_heads)
    if dtype is not None:
        key += f", native attention over an {'fp16' if dtype == torch.float16 else 'fp32'} cache"
    return key


def time_linears_ms(loaded: LoadedModel, kernel: str, identity: CpuIdentity, repeats: int = 5) -> float:
    """Milliseconds one decoder step spends in `kernel`'s linears, timed on the model's own weights."""
    causal_lm = loaded.model.decoder
    blocks = causal_lm.model.decoder.layers
    per_layer = 14 * causal_lm.config.hidden_size**2  # int8 bytes of one layer's step matmuls
    count = min(len(blocks), max(1, -(-TIMED_BYTES // per_layer)))
    bf16 = native_bf16(identity)
    calls = []
    for block in blocks[:count]:
        attention, cross = block.self_attn, getattr(block, "encoder_attn", None)  # none in MusicGen-Melody
        matmuls = [((attention.q_proj, attention.k_proj, attention.v_proj), 2), ((attention.out_proj,), 2),
                   ((block.fc1,), 2), ((block.fc2,), 2)]
        if cross is not None:
            matmuls += [((cross.q_proj,), 1), ((cross.out_proj,), 1)]
        for modules, rows in matmuls:
            layer = make_linear(kernel, *(module.weight.detach() for module in modules), native_bf16=bf16)
            calls.append((layer, torch.randn(rows, modules[0].weight.shape[1])))
    heads = make_linear(kernel, *(head.weight.detach() for head in causal_lm.lm_heads), native_bf16=bf16)
    head_input = torch.randn(2, causal_lm.config.hidden_size)

    def step() -> None:
        for layer, x in calls:
            layer(x)
        heads(head_input)

    with torch.inference_mode():
        step()  # warm-up: packing caches, thread pool
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - started)
    layer_seconds = statistics.median(seconds)  # `count` layers and the heads
    return 1000 * layer_seconds * (len(blocks) / count)  # the heads' share is scaled too: small, conservative


def prefill_linears(decoder: FastDecoder) -> list:
    """Every linear of `decoder` that has a choice of prefill path (its `prefill_paths`)."""
    found = [decoder.lm_heads]
    for layer in decoder.layers:
        found += [layer.qkv, layer.self_out, layer.cross_q, layer.cross_out, layer.fc1, layer.fc2]
    return [linear for linear in found if hasattr(linear, "prefill")]


def runnable_prefill_paths(linear) -> tuple[str, ...]:
    """The prefill paths of a linear layer's kernel that run right on this machine."""
    paths = getattr(linear, "prefill_paths", ())
    return tuple(path for path in paths if path != "int8-gemm" or int8_gemm_offered())


def prefill_paths(decoder: FastDecoder) -> tuple[str, ...]:
    """How `decoder`'s kernel can multiply a prefill's rows on this machine."""
    return runnable_prefill_paths(decoder.layers[0].fc1)


def set_prefill_path(decoder: FastDecoder, path: str) -> None:
    if path not in prefill_paths(decoder):
        raise ValueError(f"prefill path {path!r} does not run here; one of {', '.join(prefill_paths(decoder))}")
    for linear in prefill_linears(decoder):
        linear.prefill = path


def time_prefill_ms(decoder: FastDecoder, repeats: int = 3) -> dict[str, float]:
    """Milliseconds of one decoder layer's linears over an 8 s prompt's positions (one row), for each
    prefill path `decoder`'s kernel has here; {} where it has no choice."""
    layer = decoder.layers[0]
    paths = prefill_paths(decoder)
    if len(paths) < 2:
        return {}
    x = torch.randn(PREFILL_POSITIONS, decoder.hidden_size)

    def run() -> None:
        layer.qkv(x), layer.self_out(x), layer.fc2(layer.fc1(x))
        if layer.cross_q is not None:  # MusicGen-Melody's layers have none
            layer.cross_q(x), layer.cross_out(x)

    found = {}
    for path in paths:
        set_prefill_path(decoder, path)
        found[path] = median_ms(run, repeats)  # its warm-up unpacks the int8 GEMM's weights
    return found


def time_prefill_attention_ms(decoder: FastDecoder, repeats: int = 3) -> dict[str, float]:
    """Milliseconds of one layer's causal self-attention over an 8 s prompt's positions (one row), by the
    native call and by PyTorch's SDPA as a session runs them; {} where the native call does not run here."""
    positions, heads, head_dim = PREFILL_POSITIONS + 1, decoder.num_heads, decoder.head_dim
    qkv = torch.randn(1, positions, 3 * decoder.hidden_size)
    if not (decoder.native_attention and causal_attention_applies(qkv, head_dim)):
        return {}
    q, k, v = qkv.view(1, positions, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    ways = {"native": lambda: attend_causally(qkv, heads),
            "sdpa": lambda: on_every_thread(F.scaled_dot_product_attention, q, k, v, is_causal=True)}
    return {way: median_ms(run, repeats) for way, run in ways.items()}


def median_ms(run: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of `repeats` calls of `run` after one warm-up call, in inference mode."""
    seconds = []
    with torch.inference_mode():
        run()
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - started)
    return round(1000 * statistics.median(seconds), 2)


def use_faster_prefill_attention(decoder: FastDecoder, choice: KernelChoice) -> bool:
    """Run `decoder`'s prefill attention the way `choice` found faster here, timing both ways first where
    it has no timings of them (a choice made by a Segue without the native call). True if it timed them."""
    timed = False
    if not choice.prefill_attention_ms:
        choice.prefill_attention_ms = time_prefill_attention_ms(decoder)
        if choice.prefill_attention_ms:
            choice.prefill_attention = min(choice.prefill_attention_ms, key=choice.prefill_attention_ms.get)
            timed = True
    if choice.prefill_attention_ms:  # a cached "native" where the call no longer runs stays PyTorch's
        decoder.native_prefill_attention = decoder.native_attention and choice.prefill_attention == "native"
    return timed


def check_codes(loaded: LoadedModel, positions: int = CHECK_POSITIONS, seed: int = 0) -> torch.Tensor:
    """Fixed pseudo-random codes (1, codebooks, positions) after the start token, for teacher forcing."""
    generator = torch.Generator().manual_seed(seed)
    vocab = loaded.model.decoder.config.vocab_size
    codes = torch.randint(0, vocab, (1, loaded.num_codebooks, positions), generator=generator)
    codes[..., 0] = loaded.model.generation_config.decoder_start_token_id or vocab
    return codes.to(loaded.device)


@torch.inference_mode()
def teacher_forced_log_probs(
    loaded: LoadedModel, decoder: FastDecoder, codes: torch.Tensor, prefill: bool, text: str = "warm analog bass"
) -> torch.Tensor:
    """Guided next-step log-probabilities (positions, codebooks, vocab) at every position of `codes`.

    `prefill`: all positions in one call (the batched path an audio prompt takes); else one step
    per position (the path generation takes).
    """
    conditioning = encode_text(loaded, text, 1, True)
    if loaded.takes_melody:  # MusicGen-Melody reads its conditioning as a prefix: here with no melody
        from bridge.engine.musicgen.melody import melody_prefix

        conditioning = melody_prefix(loaded, conditioning, None)
    session = decoder.start(
        conditioning.hidden_states, conditioning.attention_mask, 1, 2, codes.shape[-1], prefix=conditioning.prefix
    )
    rows = codes.repeat(2, 1, 1)
    if prefill:
        logits = session(rows, all_positions=True)  # (2, positions, codebooks, vocab)
    else:
        logits = torch.stack([session(rows[..., p : p + 1]) for p in range(codes.shape[-1])], dim=1)
    guided = logits[1] + (logits[0] - logits[1]) * GUIDANCE
    return torch.log_softmax(guided.float(), dim=-1)


def mean_kl(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Mean KL(reference || other) in nats over positions and codebooks, of log-probabilities."""
    return float((reference.exp() * (reference - other)).sum(-1).mean())


def path_kl(loaded: LoadedModel, decoder: FastDecoder, reference: torch.Tensor, codes: torch.Tensor, prefill: bool) -> float:
    """The step path's (or with `prefill` the prefill path's) KL to `reference` (the fp32 log-probs)."""
    return mean_kl(reference, teacher_forced_log_probs(loaded, decoder, codes, prefill=prefill))


def faithfulness_kl(loaded: LoadedModel, decoder: FastDecoder, reference: torch.Tensor, codes: torch.Tensor) -> float:
    """The larger of the step path's and the prefill path's KL to `reference` (the fp32 log-probs)."""
    return max(path_kl(loaded, decoder, reference, codes, prefill) for prefill in (False, True))


def choose_decoder(
    loaded: LoadedModel, build: Callable[[str, bool], FastDecoder] | None = None
) -> tuple[FastDecoder | None, KernelChoice | None]:
    """The int8 decoder with the fastest faithful kernel on this CPU, and why (None, None: none runs here).

    `build(kernel, native_bf16)` makes the decoder (FastDecoder(loaded, "int8", ...) by default).
    A choice cached for this CPU identity and model is reused without measuring.
    """
    build = build or (lambda kernel, bf16: FastDecoder(loaded, "int8", kernel=kernel, native_bf16=bf16))
    identity = cpu_identity()
    names = runnable_candidates(identity)
    if not fits_onnx_blocks(loaded):
        names = [name for name in names if name != "onnx-int8"]
    if not names:
        return None, None
    key = model_key(loaded)
    cached = load_choice(identity, key)
    # Measured again where a kernel or a prefill path came or went (a Segue with other paths chose it).
    if cached is not None and set(cached.step_ms) == set(names) and cached.prefill:
        decoder = build(cached.kernel, native_bf16(identity))
        paths = prefill_paths(decoder)
        if set(cached.prefill_ms) == (set(paths) if len(paths) > 1 else set()):
            if cached.prefill in paths:
                set_prefill_path(decoder, cached.prefill)
            if use_faster_prefill_attention(decoder, cached):
                save_choice(identity, key, cached)
            return decoder, cached
        del decoder

    choice = KernelChoice(kernel="")
    for name in names:
        choice.step_ms[name] = round(time_linears_ms(loaded, name, identity), 2)
    codes = check_codes(loaded)
    reference = teacher_forced_log_probs(loaded, FastDecoder(loaded, "native"), codes, prefill=True)
    for name in sorted(names, key=choice.step_ms.get):
        decoder = build(name, native_bf16(identity))
        prefill_ms = time_prefill_ms(decoder)
        step_kl = path_kl(loaded, decoder, reference, codes, prefill=False)  # the same whatever the prefill's path
        # The fastest faithful path; a kernel with no choice runs its only one, or its own GEMM.
        for path in sorted(prefill_ms, key=prefill_ms.get) or prefill_paths(decoder) or [OWN_PREFILL]:
            if path != OWN_PREFILL:
                set_prefill_path(decoder, path)
            kl = max(step_kl, path_kl(loaded, decoder, reference, codes, prefill=True))
            choice.kl_nats[name] = round(kl, 6)
            if kl <= KL_BOUND_NATS:
                choice.kernel, choice.prefill, choice.prefill_ms = name, path, prefill_ms
                use_faster_prefill_attention(decoder, choice)  # both ways faithful: SDPA is the reference's
                save_choice(identity, key, choice)
                log.info("fast-mode kernel on this CPU: %s", choice.describe())
                return decoder, choice
            if prefill_ms:  # one path of several
                choice.rejected[f"{name}, prefill {path}"] = f"KL {kl:.4f} nats > {KL_BOUND_NATS}"
        choice.rejected[name] = f"KL {kl:.4f} nats > {KL_BOUND_NATS}"
        del decoder
    log.warning("no int8 kernel stayed within the KL bound here (%s); fast mode runs fp32", choice.rejected)
    return None, choice
