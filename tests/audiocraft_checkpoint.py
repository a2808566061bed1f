"""A tiny AudioGen checkpoint in audiocraft's own release format, built from audiocraft's source.

Key names and shapes follow facebookresearch/audiocraft (commit 896ec7c):
- LM: `models/lm.py` (emb: Embedding(card + 1, dim) per codebook; linears: Linear(dim, card, bias=False);
  out_norm), `modules/transformer.py` (StreamingTransformerLayer: self_attn / cross_attention with a packed
  `in_proj_weight` [q; k; v] (custom MHA, memory_efficient=True) and `out_proj`, no biases (bias_attn,
  bias_ff: false in config/model/lm/audiogen_lm.yaml); norm1, norm_cross, norm2, linear1, linear2),
  `modules/conditioners.py` (T5Conditioner: only `output_proj` is in the state dict, T5 is kept out).
- EnCodec: `modules/seanet.py` (SEANetEncoder / SEANetDecoder layer order), `modules/conv.py`
  (NormConv1d `.conv.conv`, NormConvTranspose1d `.convtr.convtr`, torch weight_norm: weight_g / weight_v),
  `modules/lstm.py` (StreamableLSTM `.lstm`), `quantization/core_vq.py` (`vq.layers.N._codebook.*`).
- The package: `utils/export.py` (best_state, xp.cfg as YAML text, version, exported).
"""

from pathlib import Path

import torch
import yaml

LM_DIMS = dict(dim=48, num_heads=3, num_layers=2, hidden_scale=4, n_q=4, card=2048)
CODEC_DIMS = dict(n_filters=4, dimension=16, ratios=[8, 5, 4, 2], lstm=2, compress=2, bins=2048, n_q=4)
# facebook/audiogen-medium's EnCodec (encodec_large_nq4_s320.yaml over encodec/default.yaml): 16 kHz, 50 frames/s.
REAL_CODEC_DIMS = dict(n_filters=64, dimension=128, ratios=[8, 5, 4, 2], lstm=2, compress=2, bins=2048, n_q=4)


def lm_state(t5_dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    dim, card, n_q = LM_DIMS["dim"], LM_DIMS["card"], LM_DIMS["n_q"]
    ffn = dim * LM_DIMS["hidden_scale"]

    def rand(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    state = {
        "condition_provider.conditioners.description.output_proj.weight": rand(dim, t5_dim),
        "condition_provider.conditioners.description.output_proj.bias": rand(dim),
    }
    for k in range(n_q):
        state[f"emb.{k}.weight"] = rand(card + 1, dim, scale=1.0)
    for i in range(LM_DIMS["num_layers"]):
        layer = f"transformer.layers.{i}"
        for attention in ("self_attn", "cross_attention"):
            state[f"{layer}.{attention}.in_proj_weight"] = rand(3 * dim, dim)
            state[f"{layer}.{attention}.out_proj.weight"] = rand(dim, dim)
        state[f"{layer}.linear1.weight"] = rand(ffn, dim)
        state[f"{layer}.linear2.weight"] = rand(dim, ffn)
        for norm in ("norm1", "norm_cross", "norm2"):
            state[f"{layer}.{norm}.weight"] = 1.0 + rand(dim, scale=0.1)
            state[f"{layer}.{norm}.bias"] = rand(dim, scale=0.1)
    state["out_norm.weight"] = 1.0 + rand(dim, scale=0.1)
    state["out_norm.bias"] = rand(dim, scale=0.1)
    for k in range(n_q):
        state[f"linears.{k}.weight"] = rand(card, dim, scale=1.0)
    return state


def codec_state(seed: int = 1, dims: dict | None = None, meta: bool = False) -> dict[str, torch.Tensor]:
    """EnCodec's weights (`dims`: CODEC_DIMS or REAL_CODEC_DIMS); `meta`: shapes only, no memory."""
    dims = dims or CODEC_DIMS
    generator = torch.Generator().manual_seed(seed)
    filters, dimension, compress = dims["n_filters"], dims["dimension"], dims["compress"]
    state: dict[str, torch.Tensor] = {}

    def randn(*shape: int) -> torch.Tensor:
        return torch.empty(shape, device="meta") if meta else torch.randn(*shape, generator=generator)

    def conv(name: str, in_channels: int, out_channels: int, kernel: int, transposed: bool = False) -> None:
        shape = (in_channels, out_channels, kernel) if transposed else (out_channels, in_channels, kernel)
        inner = ".convtr.convtr" if transposed else ".conv.conv"
        state[f"{name}{inner}.weight_g"] = randn(shape[0], 1, 1).abs() + 0.5
        state[f"{name}{inner}.weight_v"] = randn(*shape)
        state[f"{name}{inner}.bias"] = randn(out_channels) * 0.1

    def resblock(name: str, channels: int) -> None:
        conv(f"{name}.block.1", channels, channels // compress, 3)
        conv(f"{name}.block.3", channels // compress, channels, 1)

    def lstm(name: str, channels: int) -> None:
        for layer in range(dims["lstm"]):
            for kind in ("ih", "hh"):
                state[f"{name}.lstm.weight_{kind}_l{layer}"] = randn(4 * channels, channels) * 0.1
                state[f"{name}.lstm.bias_{kind}_l{layer}"] = randn(4 * channels) * 0.1

    index, mult = 0, 1
    conv(f"encoder.model.{index}", 1, filters, 7)
    for ratio in reversed(dims["ratios"]):
        resblock(f"encoder.model.{index + 1}", mult * filters)  # then ELU at index + 2
        conv(f"encoder.model.{index + 3}", mult * filters, 2 * mult * filters, 2 * ratio)
        index, mult = index + 3, mult * 2
    lstm(f"encoder.model.{index + 1}", mult * filters)  # then ELU
    conv(f"encoder.model.{index + 3}", mult * filters, dimension, 7)

    conv("decoder.model.0", dimension, mult * filters, 7)
    lstm("decoder.model.1", mult * filters)
    index = 1
    for ratio in dims["ratios"]:
        conv(f"decoder.model.{index + 2}", mult * filters, mult * filters // 2, 2 * ratio, transposed=True)
        resblock(f"decoder.model.{index + 3}", mult * filters // 2)
        index, mult = index + 3, mult // 2
    conv(f"decoder.model.{index + 2}", filters, 1, 7)

    for q in range(dims["n_q"]):
        codebook = f"quantizer.vq.layers.{q}._codebook"
        embed = randn(dims["bins"], dimension)
        state[f"{codebook}.inited"] = torch.tensor([1.0])
        state[f"{codebook}.cluster_size"] = torch.ones(dims["bins"])
        state[f"{codebook}.embed"] = embed
        state[f"{codebook}.embed_avg"] = embed.clone()
    return state


def lm_config_yaml(t5_name: str = "t5-large") -> str:
    """The parts of an exported AudioGen `xp.cfg` the converter reads, with OmegaConf interpolations."""
    d = LM_DIMS
    return f"""sample_rate: 16000
channels: 1
compression_model_checkpoint: //reference/bd44a852/checkpoint.th
codebooks_pattern:
  modeling: delay
  delay:
    delays: [0, 1, 2, 3]
transformer_lm:
  dim: {d['dim']}
  num_heads: {d['num_heads']}
  num_layers: {d['num_layers']}
  hidden_scale: {d['hidden_scale']}
  n_q: {d['n_q']}
  card: {d['card']}
  activation: gelu
  norm_first: true
  bias_ff: false
  bias_attn: false
  bias_proj: false
  layer_scale: null
  positional_embedding: sin
  memory_efficient: true
fuser:
  cross_attention_pos_emb: false
  cross: [description]
conditioners:
  description:
    model: t5
    t5:
      name: {t5_name}
      finetune: false
"""


def codec_config_yaml(dims: dict | None = None, **seanet_changes: object) -> str:
    """`xp.cfg` of an exported AudioGen EnCodec, as audiocraft writes it: `OmegaConf.to_yaml` of the
    whole training config, interpolations unresolved (utils/export.py:20-33). Its model sections are
    config/model/encodec/default.yaml (every key) with encodec_large_nq4_s320.yaml's overrides, under
    config/solver/compression/encodec_audiogen_16khz.yaml (channels 1, 16 kHz); a few solver keys
    stand for the rest. `dims` (default CODEC_DIMS, the tiny test codec) replaces the sizes only;
    `seanet_changes` replace `seanet` keys (None deletes one)."""
    c = dims or CODEC_DIMS
    seanet = {
        "dimension": c["dimension"], "channels": "${channels}", "causal": "${encodec.causal}",
        "n_filters": c["n_filters"], "n_residual_layers": 1, "ratios": c["ratios"], "activation": "ELU",
        "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "norm_params": {}, "kernel_size": 7,
        "residual_kernel_size": 3, "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant",
        "true_skip": True, "compress": c["compress"], "lstm": c["lstm"], "disable_norm_outer_blocks": 0,
        "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
        "encoder": {},
    }
    for key, value in seanet_changes.items():
        if value is None:
            seanet.pop(key, None)
        else:
            seanet[key] = value
    config = {
        "device": "cuda", "dtype": "float32", "solver": "compression", "sample_rate": 16000, "channels": 1,
        "losses": {"adv": 4.0, "feat": 4.0, "l1": 0.1, "mel": 0.0, "msspec": 2.0, "sisnr": 0.0},
        "compression_model": "encodec",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": "${sample_rate}",
                    "channels": "${channels}", "causal": False, "renormalize": False},
        "seanet": seanet,
        "rvq": {"n_q": c["n_q"], "q_dropout": False, "bins": c["bins"], "decay": 0.99, "kmeans_init": True,
                "kmeans_iters": 50, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
                "orthogonal_reg_active_codes_only": False},
        "no_quant": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_checkpoint(folder: Path, t5_dim: int, lm_cfg: object = None, codec_cfg: object = None) -> Path:
    """state_dict.bin and compression_state_dict.bin as audiocraft's export writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, state, cfg in (
        ("state_dict.bin", lm_state(t5_dim), lm_config_yaml() if lm_cfg is None else lm_cfg),
        ("compression_state_dict.bin", codec_state(), codec_config_yaml() if codec_cfg is None else codec_cfg),
    ):
        torch.save({"best_state": state, "xp.cfg": cfg, "version": "1.4.0a2", "exported": True}, folder / name)
    return folder
