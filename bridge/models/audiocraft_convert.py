"""Convert an audiocraft AudioGen checkpoint into a transformers MusicGen folder, once, at download.

AudioGen's language model is MusicGen's (audiocraft `models/lm.py`: per-codebook embeddings summed,
sinusoidal positions, pre-norm transformer layers with self-attention, cross-attention to the
projected T5 states and a GELU feed-forward, a final norm, one linear head per codebook), so its
weights map one to one onto `MusicgenForConditionalGeneration` (as transformers' own MusicGen
conversion and its open AudioGen PR #45382 do). The pieces:

- `state_dict.bin`: the LM (`emb.*`, `transformer.layers.*`, `out_norm`, `linears.*`) and the T5
  conditioner's output projection. T5 itself is not in it (audiocraft's T5Conditioner keeps the
  frozen T5 out of its state dict), so T5-large's encoder comes from its own safetensors repo.
- `compression_state_dict.bin`: the 16 kHz EnCodec (SEANet encoder/decoder, residual VQ), whose
  layer indices are transformers' `EncodecModel`'s.

Shapes are read from the weights and cross-checked with the checkpoint's config where it has one;
architecture options transformers' MusicGen cannot express (attention biases, RoPE, layer scale...)
are refused with one line rather than converted wrongly. The result is written as safetensors with
config, processor and `segue_audiogen.json` into a temporary folder renamed into place at the end.
"""

import math
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    AutoTokenizer,
    EncodecConfig,
    EncodecFeatureExtractor,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenProcessor,
    T5EncoderModel,
)

from bridge.engine.musicgen.audiogen import write_audiogen_marker
from bridge.errors import ModelError
from bridge.models.audiocraft_pickles import (
    checkpoint_config,
    config_value,
    load_checkpoint_pickle,
    model_state,
)
from bridge.models.folder_writes import write_folder_atomically

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"
HEAD_DIM = 64  # audiocraft's model scales all use 64-dim heads (dim / num_heads): the fallback without a config

# audiocraft LM name -> transformers name, applied in order to each key of the LM's state dict.
_LM_RENAMES = (
    (r"^emb\.(\d+)\.weight$", r"decoder.model.decoder.embed_tokens.\1.weight"),
    (r"^linears\.(\d+)\.weight$", r"decoder.lm_heads.\1.weight"),
    (r"^out_norm\.", "decoder.model.decoder.layer_norm."),
    (r"^condition_provider\.conditioners\.description\.output_proj\.", "enc_to_dec_proj."),
    (r"^transformer\.layers\.", "decoder.model.decoder.layers."),
    (r"\.cross_attention\.", ".encoder_attn."),
    (r"\.norm1\.", ".self_attn_layer_norm."),
    (r"\.norm_cross\.", ".encoder_attn_layer_norm."),
    (r"\.norm2\.", ".final_layer_norm."),
    (r"\.linear1\.", ".fc1."),
    (r"\.linear2\.", ".fc2."),
)
_CODEC_RENAMES = (
    (r"^(encoder|decoder)\.model\.", r"audio_encoder.\1.layers."),
    (r"^quantizer\.vq\.layers\.(\d+)\._codebook\.", r"audio_encoder.quantizer.layers.\1.codebook."),
    (r"\.conv\.conv\.", ".conv."),
    (r"\.convtr\.convtr\.", ".conv."),
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
)
# Config values transformers' MusicGen decoder has no room for: (dotted key, the value it implies).
_LM_REQUIREMENTS = (
    ("transformer_lm.positional_embedding", "sin"),
    ("transformer_lm.norm_first", True),
    ("transformer_lm.activation", "gelu"),
    ("transformer_lm.layer_scale", None),
    ("transformer_lm.qk_layer_norm", False),
    ("transformer_lm.qk_layer_norm_cross", False),
    ("transformer_lm.kv_repeat", 1),
    ("codebooks_pattern.modeling", "delay"),
    ("fuser.cross_attention_pos_emb", False),
)


def convert_audiogen(checkpoint_dir: Path, text_encoder_dir: Path, out_dir: Path) -> Path:
    """Convert `checkpoint_dir/{state_dict,compression_state_dict}.bin` + T5 into `out_dir`; return it."""
    lm_package = load_checkpoint_pickle(Path(checkpoint_dir) / LM_FILE)
    codec_package = load_checkpoint_pickle(Path(checkpoint_dir) / COMPRESSION_FILE)
    lm_config, codec_config = checkpoint_config(lm_package), checkpoint_config(codec_package)
    lm_weights, codec_weights = model_state(lm_package), model_state(codec_package)

    text_encoder = T5EncoderModel.from_pretrained(text_encoder_dir, use_safetensors=True, dtype=torch.float32)
    decoder_config = decoder_config_from(lm_weights, lm_config)
    codec = encodec_config_from(codec_weights, codec_config)
    projection = lm_weights.get("condition_provider.conditioners.description.output_proj.weight")
    if projection is None or projection.shape[1] != text_encoder.config.d_model:
        raise ModelError(
            f"the checkpoint's text projection does not fit the T5 encoder (d_model {text_encoder.config.d_model})"
        )
    if text_encoder.config.d_model == decoder_config.hidden_size:  # transformers then has no projection layer
        raise ModelError("unsupported AudioGen variant: its T5 width equals the LM width")
    config = MusicgenConfig(text_encoder=text_encoder.config, audio_encoder=codec, decoder=decoder_config)

    weights = convert_lm_weights(lm_weights, decoder_config.hidden_size)
    weights |= convert_codec_weights(codec_weights)
    weights |= {f"text_encoder.{name}": tensor for name, tensor in text_encoder.state_dict().items()}
    weights = _checked_against(config, weights)

    def write(folder: Path) -> None:
        config.save_pretrained(folder)
        _generation_config(decoder_config, codec).save_pretrained(folder)
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        feature_extractor = EncodecFeatureExtractor(
            feature_size=codec.audio_channels, sampling_rate=codec.sampling_rate, padding_value=0.0
        )
        tokenizer = AutoTokenizer.from_pretrained(text_encoder_dir)
        MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(folder)
        write_audiogen_marker(folder)

    return write_folder_atomically(Path(out_dir), write)


def decoder_config_from(weights: dict[str, torch.Tensor], config: dict) -> MusicgenDecoderConfig:
    for key, implied in _LM_REQUIREMENTS:
        value = config_value(config, key, implied)
        if value != implied:
            raise ModelError(f"unsupported AudioGen variant: {key} is {value!r} (Segue runs {implied!r})")
    biases = [name for name in weights if re.search(r"(in_proj_bias|out_proj\.bias|linear[12]\.bias|linears\.\d+\.bias)$", name)]
    if biases:
        raise ModelError(f"unsupported AudioGen variant: it has biases MusicGen's decoder lacks ({biases[0]})")
    embeddings = sorted(name for name in weights if re.fullmatch(r"emb\.\d+\.weight", name))
    if not embeddings:
        raise ModelError("the LM checkpoint has no codebook embeddings (emb.N.weight): not an AudioGen LM")
    rows, hidden = weights[embeddings[0]].shape
    layers = len([name for name in weights if re.fullmatch(r"transformer\.layers\.\d+\.linear1\.weight", name)])
    heads = int(config_value(config, "transformer_lm.num_heads", hidden // HEAD_DIM if hidden % HEAD_DIM == 0 else 1))
    _expect(config, "transformer_lm.dim", hidden)
    _expect(config, "transformer_lm.num_layers", layers)
    _expect(config, "transformer_lm.n_q", len(embeddings))
    _expect(config, "transformer_lm.card", rows - 1)
    delays = config_value(config, "codebooks_pattern.delay.delays", list(range(len(embeddings))))
    if list(delays) != list(range(len(embeddings))):
        raise ModelError(f"unsupported AudioGen variant: codebook delays {delays} (Segue runs 0, 1, 2, ...)")
    card = rows - 1
    return MusicgenDecoderConfig(
        vocab_size=card,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        ffn_dim=weights["transformer.layers.0.linear1.weight"].shape[0],
        num_codebooks=len(embeddings),
        audio_channels=1,
        max_position_embeddings=2048,
        pad_token_id=card,
        bos_token_id=card,
        activation_function="gelu",
        dropout=0.0,
        tie_word_embeddings=False,
    )


# What audiocraft builds when `seanet.*` omits a key: builders.get_encodec_autoencoder passes only the
# keys the config has (audiocraft models/builders.py:56-65, commit 896ec7c), so SEANetEncoder/Decoder's
# own defaults apply (modules/seanet.py:91-96 and 186-192), not the values of the training YAML.
_SEANET_CLASS_DEFAULTS = {
    "pad_mode": "reflect", "causal": False, "norm": "none", "activation": "ELU", "activation_params": {"alpha": 1.0},
    "true_skip": True, "dilation_base": 2, "disable_norm_outer_blocks": 0,
}
# A checkpoint whose config is lost (see audiocraft_pickles): every audiocraft EnCodec was trained
# through config/model/encodec/default.yaml (lines 13-41), which states these.
_SEANET_TRAINING_DEFAULTS = _SEANET_CLASS_DEFAULTS | {"pad_mode": "constant", "norm": "weight_norm"}
# transformers' EncodecModel has one set of SEANet options for encoder and decoder, ELU(alpha=1)
# everywhere and a norm on every convolution: a codec configured otherwise is refused.
_SEANET_REQUIREMENTS = (("norm", "weight_norm"), ("activation", "ELU"), ("disable_norm_outer_blocks", 0))
_DECODER_ONLY_OPTIONS = {"trim_right_ratio", "final_activation", "final_activation_params"}


def encodec_config_from(weights: dict[str, torch.Tensor], config: dict) -> EncodecConfig:
    """transformers' EncodecConfig for audiocraft's EnCodec: shapes from the weights, options from the
    checkpoint's `xp.cfg` (its `seanet`, `encodec`, `rvq` sections, as audiocraft's builder reads them)."""
    if not any(name.endswith(".weight_g") for name in weights):
        raise ModelError("unsupported EnCodec variant: Segue converts weight-normalised SEANet codecs only")
    defaults = _SEANET_CLASS_DEFAULTS if config else _SEANET_TRAINING_DEFAULTS

    def seanet(key: str):
        return config_value(config, f"seanet.{key}", defaults.get(key))

    for key, required in _SEANET_REQUIREMENTS:
        if seanet(key) != required:
            raise ModelError(f"unsupported EnCodec variant: seanet.{key} is {seanet(key)!r} (Segue converts {required!r})")
    if float((seanet("activation_params") or {}).get("alpha", 1.0)) != 1.0:
        raise ModelError(f"unsupported EnCodec variant: ELU alpha {seanet('activation_params')}")
    encoder_only = config_value(config, "seanet.encoder") or {}
    decoder_only = config_value(config, "seanet.decoder") or {}
    overridden = sorted(set(encoder_only) | (set(decoder_only) - _DECODER_ONLY_OPTIONS))
    if overridden or decoder_only.get("final_activation") is not None:
        what = overridden[0] if overridden else "decoder.final_activation"
        raise ModelError(f"unsupported EnCodec variant: seanet.{what} differs between encoder and decoder")

    first = _conv_weight(weights, "encoder.model.0.conv.conv")
    convs = sorted(int(m.group(1)) for name in weights if (m := re.fullmatch(r"encoder\.model\.(\d+)\.conv\.conv\.weight_v", name)))
    last = _conv_weight(weights, f"encoder.model.{convs[-1]}.conv.conv")
    # Downsampling convolutions have kernel 2 x stride (audiocraft seanet.py); the encoder runs the ratios reversed.
    strides = [_conv_weight(weights, f"encoder.model.{index}.conv.conv").shape[-1] // 2 for index in convs[1:-1]]
    ratios = list(reversed(strides))
    codebooks = sorted(name for name in weights if re.fullmatch(r"quantizer\.vq\.layers\.\d+\._codebook\.embed", name))
    bins, codebook_dim = weights[codebooks[0]].shape
    hidden = last.shape[0]
    residual = _conv_weight(weights, "encoder.model.1.block.1.conv.conv")
    residual_blocks = {m.group(1) for name in weights if (m := re.fullmatch(r"encoder\.model\.(\d+)\.block\.1\..*", name))}
    residual_layers = len(residual_blocks) // len(ratios)
    lstm_layers = len([name for name in weights if re.fullmatch(r"encoder\.model\.\d+\.lstm\.weight_ih_l\d+", name)])
    conv_shortcut = any(".shortcut." in name for name in weights)
    sample_rate = int(config_value(config, "encodec.sample_rate", config_value(config, "sample_rate", 16000)))
    for key, actual in (
        ("seanet.ratios", ratios), ("seanet.n_filters", first.shape[0]), ("seanet.dimension", hidden),
        ("seanet.channels", first.shape[1]), ("seanet.n_residual_layers", residual_layers),
        ("seanet.compress", first.shape[0] // residual.shape[0]), ("seanet.lstm", lstm_layers),
        ("seanet.kernel_size", first.shape[-1]), ("seanet.last_kernel_size", last.shape[-1]),
        ("seanet.residual_kernel_size", residual.shape[-1]), ("seanet.true_skip", not conv_shortcut),
        ("rvq.bins", bins), ("rvq.n_q", len(codebooks)),
    ):
        _expect(config, key, actual)
    frame_rate = math.ceil(sample_rate / math.prod(ratios))
    codec = EncodecConfig(
        sampling_rate=sample_rate,
        audio_channels=first.shape[1],
        num_filters=first.shape[0],
        hidden_size=hidden,
        codebook_dim=codebook_dim,
        codebook_size=bins,
        upsampling_ratios=ratios,
        num_lstm_layers=lstm_layers,
        kernel_size=first.shape[-1],
        last_kernel_size=last.shape[-1],
        residual_kernel_size=residual.shape[-1],
        compress=first.shape[0] // residual.shape[0],
        num_residual_layers=residual_layers,
        dilation_growth_rate=int(seanet("dilation_base")),
        use_conv_shortcut=conv_shortcut,
        use_causal_conv=bool(seanet("causal")),  # seanet.causal is ${encodec.causal} in default.yaml:16
        pad_mode=str(seanet("pad_mode")),
        trim_right_ratio=float(decoder_only.get("trim_right_ratio", 1.0)),
        normalize=bool(config_value(config, "encodec.renormalize", False)),  # builders.py:79
        norm_type="weight_norm",
        target_bandwidths=[len(codebooks) * frame_rate * math.log2(bins) / 1000],
        chunk_length_s=None,
        overlap=None,
    )
    if codec.num_quantizers != len(codebooks):
        raise ModelError(f"EnCodec with {len(codebooks)} codebooks at {frame_rate} frames/s is not representable")
    return codec


def convert_lm_weights(weights: dict[str, torch.Tensor], hidden: int) -> dict[str, torch.Tensor]:
    converted = {}
    for name, tensor in weights.items():
        target = _renamed(name, _LM_RENAMES)
        if target.endswith(".in_proj_weight"):  # packed [q; k; v] rows (audiocraft transformer.py)
            base = target.removesuffix("in_proj_weight")
            for index, part in enumerate(("q", "k", "v")):
                converted[f"{base}{part}_proj.weight"] = tensor[index * hidden : (index + 1) * hidden]
        else:
            converted[target] = tensor
    return converted


def convert_codec_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {_renamed(name, _CODEC_RENAMES): tensor for name, tensor in weights.items()}


def _renamed(name: str, renames: tuple[tuple[str, str], ...]) -> str:
    for pattern, replacement in renames:
        name = re.sub(pattern, replacement, name)
    return name


def _checked_against(config: MusicgenConfig, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor the model has, with its shape, as contiguous fp32; nothing left over."""
    with torch.device("meta"):
        expected = MusicgenForConditionalGeneration(config).state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        problem = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ModelError(f"the checkpoint does not map onto MusicGen ({problem}; {len(missing) + len(unexpected)} keys)")
    checked = {}
    seen = set()
    for name, reference in expected.items():
        tensor = weights[name]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise ModelError(f"{name} has shape {tuple(tensor.shape)}, MusicGen expects {tuple(reference.shape)}")
        # T5 ties its input embeddings to `shared`: safetensors stores a tensor once; loading re-ties it.
        identity = (tensor.data_ptr(), tuple(tensor.shape))
        if identity in seen:
            continue
        seen.add(identity)
        # A copy of its own: q/k/v are views of one packed matrix, and the sources are memory-mapped.
        checked[name] = tensor.to(torch.float32 if tensor.is_floating_point() else tensor.dtype, copy=True).contiguous()
    return checked


def _generation_config(decoder: MusicgenDecoderConfig, codec: EncodecConfig) -> GenerationConfig:
    # audiocraft AudioGen.set_generation_params: sampling, top-k 250, guidance 3, 10 s.
    return GenerationConfig(
        do_sample=True,
        guidance_scale=3.0,
        top_k=250,
        max_length=int(10 * codec.frame_rate) + 1,
        pad_token_id=decoder.pad_token_id,
        bos_token_id=decoder.bos_token_id,
        decoder_start_token_id=decoder.pad_token_id,
    )


def _conv_weight(weights: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    tensor = weights.get(f"{prefix}.weight_v")
    if tensor is None:
        raise ModelError(f"the EnCodec checkpoint has no {prefix} (not audiocraft's SEANet layout)")
    return tensor


def _expect(config: dict, key: str, actual: object) -> None:
    stated = config_value(config, key)
    if stated is not None and (list(stated) if isinstance(stated, list | tuple) else stated) != actual:
        raise ModelError(f"the checkpoint's config says {key} = {stated!r} but its weights have {actual!r}")
