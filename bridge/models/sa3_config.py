"""Read a Stable Audio 3 checkpoint's model_config.json (stable-audio-3's format) and the diffusers
configs it implies: AutoencoderSAME, StableAudio3DiTModel and the duration embedder.

Shapes come from the weights and are cross-checked with the config where it states them (diffusers'
`scripts/convert_stable_audio_3_to_diffusers.py`, commit 58eb52c, lines cited below); options the
diffusers classes cannot express are refused with one line rather than converted wrongly.
"""

import json
import math
from pathlib import Path

from bridge.errors import ModelError
from bridge.models.audiocraft_convert import _expect
from bridge.models.audiocraft_pickles import _first_line, config_value

MODEL_CONFIG = "model_config.json"
CHECKPOINT = "model.safetensors"
# stable-audio-3 models/conditioners.py T5GemmaConditioner: the only text encoder it accepts.
DEFAULT_TEXT_ENCODER = "google/t5gemma-b-b-ul2"
MODEL_TYPES = ("diffusion_cond", "diffusion_cond_inpaint")

AE = "pretransform.model."
DIT = "model.model."
PROMPT = "conditioner.conditioners.prompt."
DURATION = "conditioner.conditioners.seconds_total.embedder.embedding."

# Config values the diffusers classes have no room for: (dotted key, the value they imply).
_AE_REQUIREMENTS = (
    ("encoder.type", "same"), ("decoder.type", "same"),
    ("encoder.config.causal", False), ("encoder.config.conformer", False), ("encoder.config.layer_scale", False),
    ("decoder.config.causal", False), ("decoder.config.conformer", False), ("decoder.config.layer_scale", False),
)
_DIT_REQUIREMENTS = (
    ("transformer_type", "continuous_transformer"), ("global_cond_type", "adaLN"), ("patch_size", 1),
    ("input_concat_dim", 0), ("prepend_cond_dim", 0), ("project_cond_tokens", True), ("project_global_cond", True),
)


def read_model_config(path: Path) -> dict:
    """stable-audio-3's model_config.json as a dict; ModelError when it is not one for a Stable Audio 3 model."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelError(f"cannot read {path.name}: {_first_line(error)}") from None
    except ValueError as error:
        raise ModelError(f"{path.name} is not valid JSON: {_first_line(error)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ModelError(f"{path.name} is not a stable-audio-3 model config (no 'model' section)")
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ModelError(f"{path.name} describes a {model_type!r} model, not a Stable Audio 3 text-to-audio model")
    if config_value(config["model"], "pretransform.config.encoder.type") != "same" or prompt_options(config["model"]) is None:
        raise ModelError(f"{path.name} is not a Stable Audio 3 model (no SAME autoencoder or no T5Gemma prompt): "
                         "Segue converts Stable Audio 3 only")
    return config


def prompt_options(model: dict) -> dict | None:
    """The T5Gemma prompt conditioner's options (max_length, padding_mode, repo_id, subfolder, model_name)."""
    for entry in config_value(model, "conditioning.configs", []) or []:
        if isinstance(entry, dict) and entry.get("id") == "prompt" and entry.get("type") == "t5gemma":
            return dict(entry.get("config") or {})
    return None


def text_encoder_source(config: dict, model_id: str) -> tuple[str, str]:
    """(Hub repository, folder in it) that hold the T5Gemma the prompt conditioner loads."""
    options = prompt_options(config["model"]) or {}
    repo = options.get("repo_id") or options.get("model_name") or DEFAULT_TEXT_ENCODER
    return str(repo), str(options.get("subfolder") or "").strip("/")


def vae_config_from(config: dict, source: dict) -> dict:
    """AutoencoderSAME's config from the pretransform section, checked against the weights (script lines 388-492)."""
    autoencoder = config_value(config["model"], "pretransform.config", {})
    for key, implied in _AE_REQUIREMENTS:
        if config_value(autoencoder, key, implied) != implied:
            raise ModelError(f"unsupported Stable Audio 3 autoencoder: {key} is "
                             f"{config_value(autoencoder, key)!r} (diffusers runs {implied!r})")
    encoder, decoder = autoencoder["encoder"]["config"], autoencoder["decoder"]["config"]
    strides = list(encoder["strides"])
    window = encoder.get("sliding_window") or [1]  # script line 467: the production half-width when unset
    if len(set(window)) != 1:
        raise ModelError(f"unsupported Stable Audio 3 autoencoder: asymmetric sliding window {window}")
    qkv = source.get(f"{AE}encoder.layers.0.transformers.0.self_attn.to_qkv.weight")
    tokens = source.get(f"{AE}encoder.layers.0.new_tokens")
    if qkv is None or tokens is None:
        raise ModelError("the checkpoint has no SAME autoencoder (pretransform.model.encoder.layers.0...)")
    width = tokens.shape[-1]
    proj_in = source[f"{AE}encoder.layers.0.transformers.0.ff.ff.0.proj.weight"]
    vae = {
        "audio_channels": int(autoencoder.get("io_channels", 2)),
        "patch_size": int(autoencoder["downsampling_ratio"]) // math.prod(strides),
        "encoder_channels": int(encoder["channels"]),
        "encoder_c_mults": list(encoder["c_mults"]),
        "encoder_strides": strides,
        "encoder_transformer_depths": list(encoder["transformer_depths"]),
        "latent_dim": int(encoder.get("latent_dim", autoencoder.get("latent_dim"))),
        "use_differential_attention": bool(encoder.get("differential", True)),
        # Unstated, the reference's TransformerResamplingBlock default (128) would apply; the weights say which.
        "dim_heads": int(encoder.get("dim_heads", source[f"{AE}encoder.layers.0.transformers.0.self_attn.q_norm.gamma"].shape[0])),
        "ff_mult": proj_in.shape[0] // (2 * width),  # SwiGLU: proj_in makes 2 x (mult x width) (not in the config)
        "sliding_window": int(window[0]),
        "encoder_sinusoidal_blocks": list(encoder.get("sinusoidal_blocks", [0] * len(strides))),
        "decoder_sinusoidal_blocks": list(decoder.get("sinusoidal_blocks", [0] * len(strides))),
        "sampling_rate": int(config.get("sample_rate", 44100)),
    }
    _expect(autoencoder, "bottleneck.config.dim", vae["latent_dim"])
    _expect(decoder, "strides", strides)
    _expect(decoder, "transformer_depths", vae["encoder_transformer_depths"])
    if qkv.shape[0] != (5 if vae["use_differential_attention"] else 3) * width:
        raise ModelError(f"the autoencoder's attention has {qkv.shape[0]} q/k/v rows for width {width}: its "
                         "config's 'differential' does not match the weights")
    return vae


def dit_config_from(model: dict, source: dict) -> dict:
    """StableAudio3DiTModel's config read from the weights' shapes (script lines 495-555), checked against the config."""
    stated = config_value(model, "diffusion.config", {}) or {}
    for key, implied in _DIT_REQUIREMENTS:
        if stated.get(key, implied) != implied:
            raise ModelError(f"unsupported Stable Audio 3 DiT: {key} is {stated[key]!r} (diffusers runs {implied!r})")
    timestep = source.get(f"{DIT}to_timestep_embed.0.weight")
    if timestep is None:
        raise ModelError("the checkpoint has no diffusion transformer (model.model.to_timestep_embed...)")
    layer = f"{DIT}transformer.layers.0."
    embed_dim = timestep.shape[0]
    depth = len({key.split(".")[4] for key in source if key.startswith(f"{DIT}transformer.layers.")})
    dim_heads = source[f"{layer}self_attn.q_norm.gamma"].shape[0]
    memory = source.get(f"{DIT}transformer.memory_tokens")
    dit = {
        "io_channels": source[f"{DIT}preprocess_conv.weight"].shape[0],
        "patch_size": 1,
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": embed_dim // dim_heads,
        "cond_token_dim": source[f"{DIT}to_cond_embed.0.weight"].shape[1],
        "global_cond_dim": source[f"{DIT}to_global_embed.0.weight"].shape[1],
        "local_add_cond_dim": source[f"{layer}to_local_embed.0.weight"].shape[1],
        "timestep_features_dim": timestep.shape[1],
        "ff_mult": source[f"{layer}ff.ff.0.proj.weight"].shape[0] // (2 * embed_dim),
        "num_memory_tokens": 0 if memory is None else memory.shape[0],
        "use_differential_attention": source[f"{layer}self_attn.to_qkv.weight"].shape[0] == 5 * embed_dim,
    }
    for key in ("io_channels", "embed_dim", "depth", "num_heads", "cond_token_dim", "global_cond_dim"):
        _expect(stated, key, dit[key])
    return dit


def duration_config_from(model: dict, source: dict) -> dict:
    """The seconds_total embedder: its clamp comes from the config (the script assumes 0-384 s, line 569-570)."""
    linear = source.get(f"{DURATION}1.weight")
    if linear is None:
        raise ModelError(f"the checkpoint has no duration embedding ({DURATION}1.weight)")
    options = next((entry.get("config") or {} for entry in config_value(model, "conditioning.configs", [])
                    if isinstance(entry, dict) and entry.get("id") == "seconds_total"), {})
    if options.get("fourier_features_type", "expo") != "expo":  # stable-audio-3 conditioners.py NumberEmbedder
        raise ModelError(f"unsupported Stable Audio 3 variant: {options['fourier_features_type']!r} duration "
                         "features (diffusers computes 'expo' ones)")
    return {"output_dim": linear.shape[0], "fourier_dim": linear.shape[1], "min_val": float(options.get("min_val", 0.0)),
            "max_val": float(options.get("max_val", 384.0)), "min_freq": 0.5, "max_freq": 10000.0}
