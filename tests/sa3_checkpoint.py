"""A tiny Stable Audio 3 checkpoint in Stability's own format, written from a random diffusers pipeline.

The layout is stable-audio-3's (github.com/Stability-AI/stable-audio-3 at 636f906): one
`model.safetensors` with every trained module under its path in `ConditionedDiffusionModelWrapper`
(`pretransform.model.*`, `model.model.*`, `conditioner.conditioners.*`), `model_config.json` in the
shape `factory.py` reads, and the T5Gemma text encoder (encoder + decoder, as Google publishes it) in
the subfolder the prompt conditioner names. Names are written here from stable-audio-3's modules,
independently of Segue's converter, so converting back must give the pipeline's own tensors.
"""

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from bridge.engine.stable_audio.random_models import ARCHITECTURES

TEXT_ENCODER_FOLDER = "t5gemma-b-b-ul2"
# tiny-stable-audio with differential attention (the real models' kind), so the q/k/v reorder is exercised.
DIFFERENTIAL = "tiny-sa3-differential"
SPEC = copy.deepcopy(ARCHITECTURES["tiny-stable-audio"])
SPEC["transformer"]["use_differential_attention"] = True
SPEC["vae"]["use_differential_attention"] = True

# diffusers block names -> stable-audio-3 models/transformer.py TransformerBlock names.
_AE_BLOCK = (("norm_attn.", "pre_norm."), ("attn.", "self_attn."), ("norm_ff.", "ff_norm."),
             ("ff.proj_in.", "ff.ff.0.proj."), ("ff.proj_out.", "ff.ff.2."))
_DIT_BLOCK = (("ff.proj_in.", "ff.ff.0.proj."), ("ff.proj_out.", "ff.ff.2."))


def build_differential_pipeline(seed: int = 0):
    from bridge.engine.stable_audio.random_models import build_random_stable_audio

    with _registered():
        return build_random_stable_audio(DIFFERENTIAL, seed)


class _registered:
    def __enter__(self) -> None:
        ARCHITECTURES[DIFFERENTIAL] = SPEC

    def __exit__(self, *exc_info) -> None:
        ARCHITECTURES.pop(DIFFERENTIAL, None)


def to_reference_qkv(weight: torch.Tensor) -> torch.Tensor:
    """diffusers' [q | q2 | k | k2 | v] rows -> stable-audio-3's fused [q | k | v | q2 | k2]."""
    q, q2, k, k2, v = weight.chunk(5, dim=0)
    return torch.cat([q, k, v, q2, k2], dim=0)


def _block(name: str, renames) -> str:
    for ours, theirs in renames:
        if name.startswith(ours) or f".{ours}" in name:
            return name.replace(ours, theirs, 1)
    return name


def stability_state(pipeline) -> dict[str, torch.Tensor]:
    """The pipeline's VAE, DiT, duration and padding tensors under stable-audio-3's names."""
    state = {}
    vae = pipeline.vae.state_dict()
    depth = len(SPEC["vae"]["encoder_strides"])
    for key, tensor in vae.items():
        if key.startswith("bottleneck."):
            continue  # below: SoftNormBottleneck's own names
        side, kind, rest = key.split(".", 2)
        if kind == "blocks":
            index, inner = rest.split(".", 1)
            layer = int(index) if side == "encoder" else 3 + int(index)  # decoder: [Transpose, Linear, Transpose, TRB...]
            if inner.startswith("transformers."):
                number, name = inner.removeprefix("transformers.").split(".", 1)
                name = _block(name, _AE_BLOCK)
                tensor = to_reference_qkv(tensor) if name == "self_attn.to_qkv.weight" else tensor
                inner = f"transformers.{number}.{name}"
            state[f"pretransform.model.{side}.layers.{layer}.{inner}"] = tensor
        elif kind == "proj":  # encoder: [TRB..., Transpose, Linear, Transpose]
            state[f"pretransform.model.{side}.layers.{depth + 1 if side == 'encoder' else 1}.{rest}"] = tensor
    state["pretransform.model.bottleneck.scaling_factor"] = vae["bottleneck.scale"]
    state["pretransform.model.bottleneck.bias"] = vae["bottleneck.bias"]
    state["pretransform.model.bottleneck.running_std"] = vae["bottleneck.running_std"]
    state["pretransform.model.bottleneck.noise_scaling_factor"] = torch.ones(1, 0, 1)
    for key, tensor in pipeline.transformer.state_dict().items():
        if key == "prompt_padding_embedding":
            state["conditioner.conditioners.prompt.padding_embedding"] = tensor
        elif key.startswith("transformer_blocks."):
            _, index, name = key.split(".", 2)
            name = _block(name, _DIT_BLOCK)
            tensor = to_reference_qkv(tensor) if name == "self_attn.to_qkv.weight" else tensor
            state[f"model.model.transformer.layers.{index}.{name}"] = tensor
        elif key.split(".")[0] in ("memory_tokens", "rotary_pos_emb", "global_cond_embedder"):
            state[f"model.model.transformer.{key}"] = tensor
        elif key.startswith(("proj_in.", "proj_out.")):
            state[f"model.model.transformer.project_{key.removeprefix('proj_')}"] = tensor
        else:
            state[f"model.model.{key}"] = tensor
    duration = pipeline.duration_embedder.state_dict()
    for name in ("weight", "bias"):
        state[f"conditioner.conditioners.seconds_total.embedder.embedding.1.{name}"] = duration[f"linear.{name}"]
    return {key: tensor.detach().clone().contiguous() for key, tensor in state.items()}


def model_config(repo_id: str, objective: str = "rf_denoiser") -> dict:
    """stable-audio-3's model_config.json for the tiny model (the fields factory.py and the converter read)."""
    vae, dit, duration = SPEC["vae"], SPEC["transformer"], SPEC["duration_embedder"]
    same = {"channels": vae["encoder_channels"], "c_mults": list(vae["encoder_c_mults"]),
            "strides": list(vae["encoder_strides"]), "latent_dim": vae["latent_dim"],
            "transformer_depths": list(vae["encoder_transformer_depths"]), "differential": True, "dyt": True,
            "dim_heads": vae["dim_heads"], "variable_stride": True, "sliding_window": [1, 1], "causal": False}
    patched = vae["audio_channels"] * vae["patch_size"]
    return {
        "model_type": "diffusion_cond_inpaint",
        "sample_rate": 44100,
        "audio_channels": 2,
        "model": {
            "io_channels": dit["io_channels"],
            "pretransform": {"type": "autoencoder", "config": {
                "encoder": {"type": "same", "config": {"in_channels": patched, **same}},
                "decoder": {"type": "same", "config": {"out_channels": patched, "sinusoidal_blocks": [0], **same}},
                "bottleneck": {"type": "softnorm", "config": {"dim": vae["latent_dim"], "auto_scale": True}},
                "pretransform": {"type": "patched", "config": {"channels": 2, "patch_size": vae["patch_size"]}},
                "latent_dim": vae["latent_dim"], "downsampling_ratio": 4096, "io_channels": 2}},
            "conditioning": {"cond_dim": dit["cond_token_dim"], "configs": [
                {"id": "prompt", "type": "t5gemma", "config": {
                    "max_length": 256, "padding_mode": "learned", "repo_id": repo_id, "subfolder": TEXT_ENCODER_FOLDER}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": duration["max_val"]}}]},
            "diffusion": {"type": "dit", "diffusion_objective": objective,
                          "cross_attention_cond_ids": ["prompt"], "global_cond_ids": ["seconds_total"],
                          "config": {"io_channels": dit["io_channels"], "embed_dim": dit["embed_dim"],
                                     "depth": dit["depth"], "num_heads": dit["num_heads"],
                                     "cond_token_dim": dit["cond_token_dim"], "global_cond_dim": dit["global_cond_dim"],
                                     "global_cond_type": "adaLN", "transformer_type": "continuous_transformer"}},
        },
    }


def write_text_encoder(pipeline, folder: Path) -> Path:
    """T5Gemma as Google publishes it (encoder and decoder), whose encoder is the pipeline's."""
    from transformers import T5GemmaConfig, T5GemmaForConditionalGeneration

    module = pipeline.text_encoder.config.encoder
    full = T5GemmaForConditionalGeneration(T5GemmaConfig(encoder=module.to_dict(), decoder=module.to_dict()))
    encoder = {f"model.{key}": tensor for key, tensor in pipeline.text_encoder.state_dict().items()}
    full.load_state_dict(encoder, strict=False)
    full.save_pretrained(folder, safe_serialization=True)
    pipeline.tokenizer.save_pretrained(folder)
    return folder


def write_stability_repo(pipeline, folder: Path, repo_id: str, objective: str = "rf_denoiser") -> Path:
    """`folder` as Stability's Hub repository holds it: model_config.json, model.safetensors, T5Gemma."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_config.json").write_text(json.dumps(model_config(repo_id, objective), indent=2))
    save_file(stability_state(pipeline), str(folder / "model.safetensors"))
    write_text_encoder(pipeline, folder / TEXT_ENCODER_FOLDER)
    (folder / "README.md").write_text("---\nlicense: other\nlicense_name: stability-ai-community-license\n---\n")
    return folder
