"""Convert a Stable Audio 3 checkpoint (Stability's stable-audio-3 format) into a diffusers folder, once.

Stability publishes each Stable Audio 3 model as `model_config.json` (stable-audio-3's model config)
and one `model.safetensors` holding every trained part under its module path:

    pretransform.model.*                       the SAME autoencoder        -> vae/ (AutoencoderSAME)
    model.model.*                              the diffusion transformer   -> transformer/ (StableAudio3DiTModel)
    conditioner.conditioners.seconds_total.*   the duration embedding      -> duration_embedder/
    conditioner.conditioners.prompt.*          the learned padding token   -> transformer/prompt_padding_embedding
                                               (and T5Gemma, when trained)

The frozen T5Gemma text encoder is not in the checkpoint (stable-audio-3 `T5GemmaConditioner` keeps
it out of its state dict); it comes as safetensors from the folder the prompt conditioner names.
The key names, the differential-attention q/k/v reorder and the config fields follow diffusers'
`scripts/convert_stable_audio_3_to_diffusers.py` (commit 58eb52c, lines cited below). Unlike that
script, nothing is skipped silently: each diffusers module is built on the meta device from the
config, and every tensor it has must come from the checkpoint with its exact shape (or the
conversion stops with one line); architecture options diffusers cannot express are refused.
Everything is written as safetensors into a temporary folder renamed into place at the end.
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bridge.errors import ModelError
from bridge.models.audiocraft_convert import _renamed
from bridge.models.audiocraft_pickles import _first_line, config_value
from bridge.models.folder_writes import write_folder_atomically
from bridge.models.sa3_config import (
    AE,
    CHECKPOINT,
    DIT,
    DURATION,
    MODEL_CONFIG,
    PROMPT,
    dit_config_from,
    duration_config_from,
    prompt_options,
    read_model_config,
    vae_config_from,
)

# A reference tensor with no diffusers counterpart that carries nothing at inference: the bottleneck's
# noise-augmentation scale (no noise is added when decoding). The duration's Fourier features have no
# tensors when they are "expo" (what diffusers computes); "learned" ones are refused as leftovers.
IGNORED = (f"{AE}bottleneck.noise_scaling_factor",)

# Inside an autoencoder transformer block (script lines 93-102), applied to the part after `transformers.`.
_AE_BLOCK_RENAMES = (
    (r"^(\d+)\.pre_norm\.", r"\1.norm_attn."),
    (r"^(\d+)\.self_attn\.", r"\1.attn."),
    (r"^(\d+)\.ff_norm\.", r"\1.norm_ff."),
    (r"^(\d+)\.ff\.ff\.0\.proj\.", r"\1.ff.proj_in."),
    (r"^(\d+)\.ff\.ff\.2\.", r"\1.ff.proj_out."),
)
# The DiT keeps the reference names except its feed-forward (script lines 107-110, 313-321).
_DIT_RENAMES = (
    (r"^transformer\.layers\.", "transformer_blocks."),
    (r"^transformer\.project_in\.", "proj_in."),
    (r"^transformer\.project_out\.", "proj_out."),
    (r"^transformer\.(memory_tokens|rotary_pos_emb\.|global_cond_embedder\.)", r"\1"),
    (r"\.ff\.ff\.0\.proj\.", ".ff.proj_in."),
    (r"\.ff\.ff\.2\.", ".ff.proj_out."),
)
def convert_stable_audio_3(checkpoint_dir: Path, text_encoder_dir: Path, out_dir: Path) -> Path:
    """Convert `checkpoint_dir/{model_config.json,model.safetensors}` + T5Gemma into `out_dir`; return it."""
    config = read_model_config(Path(checkpoint_dir) / MODEL_CONFIG)
    source = _read_checkpoint(Path(checkpoint_dir) / CHECKPOINT)
    model = config["model"]
    differential = bool(config_value(model, "pretransform.config.encoder.config.differential", True))

    from diffusers import AutoencoderSAME, StableAudio3DiTModel
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    try:
        vae_config = vae_config_from(config, source)
        dit_config = dit_config_from(model, source)
        duration_config = duration_config_from(model, source)
    except (KeyError, TypeError, IndexError) as error:  # a field or tensor every Stable Audio 3 model has
        raise ModelError(f"not a complete Stable Audio 3 checkpoint: it or its {MODEL_CONFIG} lacks "
                         f"{_first_line(error)}") from None
    if dit_config["io_channels"] != vae_config["latent_dim"]:
        raise ModelError(f"the DiT works on {dit_config['io_channels']} channels but the autoencoder makes "
                         f"{vae_config['latent_dim']}: not one Stable Audio 3 model")
    parts = {
        "vae": (AutoencoderSAME, vae_config, convert_vae_weights(source, differential)),
        "transformer": (StableAudio3DiTModel, dit_config, convert_dit_weights(source, dit_config, prompt_padding(model, source))),
        "duration_embedder": (StableAudio3DurationEmbedder, duration_config, convert_duration_weights(source, duration_config)),
    }
    _refuse_leftovers(source)

    def write(folder: Path) -> None:
        for name, (model_class, part_config, weights) in parts.items():
            _save_part(folder / name, model_class, part_config, weights)
        text_encoder_class, tokenizer_class = _save_text_encoder(folder, Path(text_encoder_dir), source,
                                                                 prompt_options(model))
        _save_scheduler(folder / "scheduler", model)
        _write_model_index(folder, text_encoder_class, tokenizer_class)

    return write_folder_atomically(Path(out_dir), write)


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise ModelError(f"the Stable Audio 3 checkpoint has no {path.name}") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"{path.name} is not a readable safetensors file: {_first_line(error)}") from None


def reorder_differential_qkv(weight: torch.Tensor) -> torch.Tensor:
    """Reference rows [q | k | v | q2 | k2] -> diffusers' [q | q2 | k | k2 | v] (script lines 74-84)."""
    q, k, v, q2, k2 = weight.chunk(5, dim=0)
    return torch.cat([q, q2, k, k2, v], dim=0)


def convert_vae_weights(source: dict[str, torch.Tensor], differential: bool) -> dict[str, torch.Tensor]:
    """SAME: encoder layers [TRB..., Transpose, Linear, Transpose], decoder [Transpose, Linear, Transpose,
    TRB...] (stable-audio-3 models/autoencoders.py SAMEEncoder/SAMEDecoder; script lines 175-254)."""
    converted = {}
    depth = sum(1 for key in source if key.startswith(f"{AE}encoder.layers.") and key.endswith(".new_tokens"))
    for side, first_block, projection in (("encoder", 0, depth + 1), ("decoder", 3, 1)):
        prefix = f"{AE}{side}.layers."
        for key, tensor in source.items():
            if not key.startswith(prefix):
                continue
            index, rest = key[len(prefix):].split(".", 1)
            if int(index) == projection:
                converted[f"{side}.proj.{rest}"] = tensor
                continue
            block = int(index) - first_block
            if rest.startswith("transformers."):
                rest = "transformers." + _renamed(rest.removeprefix("transformers."), _AE_BLOCK_RENAMES)
                if differential and rest.endswith("attn.to_qkv.weight"):
                    tensor = reorder_differential_qkv(tensor)
            converted[f"{side}.blocks.{block}.{rest}"] = tensor
    for theirs, ours in (("scaling_factor", "scale"), ("bias", "bias"), ("running_std", "running_std")):
        if f"{AE}bottleneck.{theirs}" in source:
            converted[f"bottleneck.{ours}"] = source[f"{AE}bottleneck.{theirs}"]
    # Without auto_scale the reference never divides by a running std: diffusers' 1 is the same.
    converted.setdefault("bottleneck.running_std", torch.ones(1))
    return converted


def convert_dit_weights(source: dict[str, torch.Tensor], config: dict, padding: torch.Tensor) -> dict[str, torch.Tensor]:
    converted = {}
    for key, tensor in source.items():
        if key.startswith(DIT):
            name = _renamed(key[len(DIT):], _DIT_RENAMES)
            if config["use_differential_attention"] and name.endswith("self_attn.to_qkv.weight"):
                tensor = reorder_differential_qkv(tensor)  # cross-attention's to_q/to_kv already match (script 348-350)
            converted[name] = tensor
    if "rotary_pos_emb.inv_freq" not in converted:  # a buffer the reference rebuilds the same way
        from diffusers.models.transformers.transformer_stable_audio3 import StableAudio3RotaryEmbedding

        dim_heads = config["embed_dim"] // config["num_heads"]
        converted["rotary_pos_emb.inv_freq"] = StableAudio3RotaryEmbedding(dim_heads // 2).inv_freq
    converted["prompt_padding_embedding"] = padding
    return converted


def prompt_padding(model: dict, source: dict[str, torch.Tensor]) -> torch.Tensor:
    """The text-padding vector the DiT puts in place of padded tokens (script lines 356-363)."""
    options = prompt_options(model) or {}
    mode = options.get("padding_mode", "zero")
    if f"{PROMPT}proj_out.weight" in source:
        raise ModelError("unsupported Stable Audio 3 variant: its prompt conditioner projects T5Gemma's output")
    if mode == "learned" and f"{PROMPT}padding_embedding" in source:
        return source[f"{PROMPT}padding_embedding"]
    if mode == "zero":  # padded positions are zeroed: a zero padding vector does exactly that
        width = source[f"{DIT}to_cond_embed.0.weight"].shape[1]
        return torch.zeros(width)
    raise ModelError(f"unsupported Stable Audio 3 variant: prompt padding_mode {mode!r} without its embedding")


def convert_duration_weights(source: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    # `freqs` is a fixed buffer of the Fourier features: built by the class itself, as the script does by hand.
    freqs = StableAudio3DurationEmbedder(**config).freqs
    return {"linear.weight": source[f"{DURATION}1.weight"], "linear.bias": source[f"{DURATION}1.bias"], "freqs": freqs}


def _refuse_leftovers(source: dict[str, torch.Tensor]) -> None:
    """A tensor under a part this converter reads but maps nowhere means an architecture it does not know."""
    known = (f"{AE}encoder.", f"{AE}decoder.", f"{AE}bottleneck.", DIT, f"{PROMPT}padding_embedding",
             f"{PROMPT}model.", f"{DURATION}1.")
    unknown = sorted(key for key in source if not key.startswith(known) and not key.startswith(IGNORED))
    unknown = [key for key in unknown if key.startswith(("pretransform.", "model.", "conditioner."))]
    if unknown:
        raise ModelError(f"unsupported Stable Audio 3 variant: Segue does not know {unknown[0]} "
                         f"({len(unknown)} such tensors)")


def _save_part(folder: Path, model_class, config: dict, weights: dict[str, torch.Tensor]) -> None:
    """Every tensor `model_class(**config)` has, with its shape, from `weights` (nothing left over), as fp32."""
    with torch.device("meta"):
        expected = model_class(**config).state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        problem = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ModelError(f"the checkpoint does not map onto diffusers' {model_class.__name__} ({problem}; "
                         f"{len(missing) + len(unexpected)} tensors)")
    checked = {}
    for name, reference in expected.items():
        tensor = weights[name]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise ModelError(f"{folder.name}: {name} has shape {tuple(tensor.shape)}, diffusers' "
                             f"{model_class.__name__} expects {tuple(reference.shape)}")
        # No copy of what is already fp32: Medium's checkpoint is gigabytes, held once.
        checked[name] = tensor.to(torch.float32).contiguous()
    folder.mkdir(parents=True)
    with torch.device("meta"):
        model_class(**config).save_config(folder)
    save_file(checked, str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})


def _save_text_encoder(folder: Path, source_dir: Path, source: dict[str, torch.Tensor], options: dict) -> tuple[str, str]:
    """T5Gemma's encoder (trained weights from the checkpoint, if any: script lines 373-380, 689-697) and tokenizer."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer, T5GemmaEncoderModel

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(source_dir)
        config.is_encoder_decoder = False  # stable-audio-3 T5GemmaConditioner: the encoder alone
        encoder, info = T5GemmaEncoderModel.from_pretrained(
            source_dir, config=config, use_safetensors=True, dtype=torch.float32, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(source_dir)
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"the T5Gemma text encoder does not load: {_first_line(error)}") from None
    if info["missing_keys"]:
        raise ModelError(f"the T5Gemma text encoder lacks {sorted(info['missing_keys'])[0]}")
    trained = {key.removeprefix(f"{PROMPT}model."): tensor for key, tensor in source.items()
               if key.startswith(f"{PROMPT}model.")}
    if trained:
        result = encoder.load_state_dict(trained, strict=False)
        if result.unexpected_keys:
            raise ModelError(f"the checkpoint's text encoder has {result.unexpected_keys[0]}, which T5Gemma lacks")
    encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    tokenizer.model_max_length = int(options.get("max_length", 128))  # the conditioner's token budget
    tokenizer.save_pretrained(folder / "tokenizer")
    return type(encoder).__name__, type(tokenizer).__name__


def _save_scheduler(folder: Path, model: dict) -> None:
    """Distilled (rf_denoiser): 8 ping-pong steps that re-noise; base (rectified_flow): Euler (script lines 738-756)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    objective = config_value(model, "diffusion.diffusion_objective", "rectified_flow")
    FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0,
                                    stochastic_sampling=objective == "rf_denoiser").save_pretrained(folder)


def _write_model_index(folder: Path, text_encoder_class: str, tokenizer_class: str) -> None:
    import diffusers

    # What StableAudio3Pipeline.save_pretrained writes (its duration embedder lives in the stable_audio_3 pipeline module).
    index = {
        "_class_name": "StableAudio3Pipeline",
        "_diffusers_version": diffusers.__version__,
        "duration_embedder": ["stable_audio_3", "StableAudio3DurationEmbedder"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", text_encoder_class],
        "tokenizer": ["transformers", tokenizer_class],
        "transformer": ["diffusers", "StableAudio3DiTModel"],
        "vae": ["diffusers", "AutoencoderSAME"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
