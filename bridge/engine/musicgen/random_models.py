"""MusicGen models with random weights, built locally from explicit configs.

`tiny` (and `tiny-stereo`) make noise in milliseconds and let every path of the app run offline;
`small-random` has the real musicgen-small architecture, so its cost per step is the real one
(benchmarks use it). Each is saved with `save_pretrained` and then loaded through the same
`from_pretrained` path as a downloaded checkpoint.
"""

import string
from pathlib import Path

import torch
import transformers
from transformers import (
    EncodecConfig,
    EncodecFeatureExtractor,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenMelodyConfig,
    MusicgenMelodyDecoderConfig,
    MusicgenMelodyForConditionalGeneration,
    MusicgenProcessor,
    T5Config,
    T5Tokenizer,
)

from bridge.engine.musicgen.audiogen import write_audiogen_marker
from bridge.engine.random_model_folder import save_random_model

SAMPLE_RATE = 32000
CODEBOOK_SIZE = 2048

# musicgen-small's EnCodec 32 kHz: 640 samples per frame (50 frames/s), 4 codebooks at 2.2 kbps.
_ENCODEC_32KHZ = dict(
    sampling_rate=SAMPLE_RATE,
    upsampling_ratios=[8, 5, 4, 4],
    target_bandwidths=[2.2],
    codebook_size=CODEBOOK_SIZE,
    use_causal_conv=False,
    norm_type="weight_norm",
    pad_mode="reflect",
    use_conv_shortcut=False,
    normalize=False,
    chunk_length_s=None,
    overlap=None,
)

# A text encoder and codec small enough to build in milliseconds (shapes only; weights are random).
_TINY_TEXT_ENCODER = dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, feed_forward_proj="relu")
_TINY_CODEC = dict(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1)
_TINY_DECODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64)
# The real models' text encoder (t5-base) and codec shapes.
_T5_BASE = dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, feed_forward_proj="relu", vocab_size=32128)
_ENCODEC_32KHZ_SHAPES = dict(num_filters=64, hidden_size=128, codebook_dim=128, num_lstm_layers=2)

# AudioGen's EnCodec: 16 kHz, 320 samples per frame (50 frames/s), 4 codebooks of 2048 at 2.2 kbps.
AUDIOGEN_SAMPLE_RATE = 16000
_ENCODEC_16KHZ = {**_ENCODEC_32KHZ, "sampling_rate": AUDIOGEN_SAMPLE_RATE, "upsampling_ratios": [8, 5, 4, 2]}

ARCHITECTURES = {
    "tiny": dict(text_encoder=_TINY_TEXT_ENCODER, audio_encoder=_TINY_CODEC, decoder=_TINY_DECODER, audio_channels=1),
    "tiny-stereo": dict(
        text_encoder=_TINY_TEXT_ENCODER, audio_encoder=_TINY_CODEC, decoder=_TINY_DECODER, audio_channels=2
    ),
    "small-random": dict(
        text_encoder=_T5_BASE,
        audio_encoder=_ENCODEC_32KHZ_SHAPES,
        decoder=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096),
        audio_channels=1,
    ),
    # AudioGen (bridge/engine/musicgen/audiogen.py): the MusicGen architecture over a 16 kHz codec.
    "tiny-audiogen": dict(
        text_encoder=_TINY_TEXT_ENCODER, audio_encoder=_TINY_CODEC, decoder=_TINY_DECODER, audio_channels=1,
        codec=_ENCODEC_16KHZ, kind="audiogen",
    ),
    # audiogen-medium's shapes (audiocraft config/model/lm/model_scale/medium.yaml; T5-large text encoder;
    # EnCodec 16 kHz with 64 filters, config/model/encodec/encodec_large_nq4_s320.yaml): benchmarks.
    "audiogen-medium-random": dict(
        text_encoder=dict(
            d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, feed_forward_proj="relu", vocab_size=32128
        ),
        audio_encoder=dict(num_filters=64, hidden_size=128, codebook_dim=128, num_lstm_layers=2),
        decoder=dict(hidden_size=1536, num_hidden_layers=48, num_attention_heads=24, ffn_dim=6144),
        audio_channels=1, codec=_ENCODEC_16KHZ, kind="audiogen",
    ),
    # musicgen-small's decoder width with 2 of its 24 layers and a tiny text encoder and codec: tests
    # of numerics (quantisation error) at the real matrix sizes, in seconds.
    "small-2-layers": dict(
        text_encoder=_TINY_TEXT_ENCODER,
        audio_encoder=_TINY_CODEC,
        decoder=dict(hidden_size=1024, num_hidden_layers=2, num_attention_heads=16, ffn_dim=4096),
        audio_channels=1,
    ),
    # Melody models (bridge/engine/musicgen/melody.py): text + chromagram prefix, no cross-attention.
    # At the default init (0.02) a melody barely moves greedy choices; 0.2 lets tests tell melodies apart.
    "tiny-melody": dict(
        text_encoder=_TINY_TEXT_ENCODER, audio_encoder=_TINY_CODEC, decoder=_TINY_DECODER, audio_channels=1,
        melody=True, initializer_factor=0.2,
    ),
    "tiny-stereo-melody": dict(
        text_encoder=_TINY_TEXT_ENCODER, audio_encoder=_TINY_CODEC, decoder=_TINY_DECODER, audio_channels=2,
        melody=True, initializer_factor=0.2,
    ),
    # musicgen-melody's real shapes (1.5B: t5-base, 48 layers of 1536): benchmarks only.
    "melody-random": dict(
        text_encoder=_T5_BASE,
        audio_encoder=_ENCODEC_32KHZ_SHAPES,
        decoder=dict(hidden_size=1536, num_hidden_layers=48, num_attention_heads=24, ffn_dim=6144),
        audio_channels=1,
        melody=True,
    ),
}


def tiny_tokenizer() -> T5Tokenizer:
    """A T5 (Unigram) tokenizer over letters, digits and a few musical words: any text tokenizes."""
    words = ["drums", "bass", "guitar", "piano", "synth", "pad", "lofi", "lo-fi", "hip", "hop", "house", "techno", "ambient", "jazz", "funk", "rock", "trap", "beat", "groove", "loop", "chill", "dark", "bright", "warm", "deep", "slow", "fast", "bpm", "drum", "and", "with", "the", "a", "of", "in"]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{word}", -3.0) for word in words]
    pieces += [(char, -5.0) for char in string.ascii_lowercase + string.digits + string.punctuation]
    pieces += [(f"▁{char}", -6.0) for char in string.ascii_lowercase + string.digits]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def build_random_musicgen(
    architecture: str, seed: int = 0
) -> tuple[MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration, MusicgenProcessor]:
    # MusicGen's pad id (= codebook size) trips a harmless config warning; users need not see it.
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    spec = ARCHITECTURES[architecture]
    tokenizer = tiny_tokenizer()
    channels = spec["audio_channels"]
    text_kwargs = {"vocab_size": len(tokenizer), **spec["text_encoder"]}
    decoder_kwargs = dict(
        vocab_size=CODEBOOK_SIZE,
        max_position_embeddings=2048,
        num_codebooks=4 * channels,
        audio_channels=channels,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        activation_function="gelu",
        dropout=0.1,
        tie_word_embeddings=False,
        **spec["decoder"],
    )
    codec = spec.get("codec", _ENCODEC_32KHZ)
    text_config, codec_config = T5Config(**text_kwargs), EncodecConfig(**codec, **spec["audio_encoder"])
    torch.manual_seed(seed)
    if spec.get("melody"):
        decoder_config = MusicgenMelodyDecoderConfig(initializer_factor=spec.get("initializer_factor", 0.02), **decoder_kwargs)
        config = MusicgenMelodyConfig(text_encoder=text_config, audio_encoder=codec_config, decoder=decoder_config)
        model = MusicgenMelodyForConditionalGeneration(config).eval()
    else:
        config = MusicgenConfig(text_encoder=text_config, audio_encoder=codec_config, decoder=MusicgenDecoderConfig(**decoder_kwargs))
        model = MusicgenForConditionalGeneration(config).eval()
    # EnCodec's codebooks are buffers that start at zero (they are learnt by k-means): give them
    # random vectors so different codes decode to different audio.
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)
    model.generation_config = GenerationConfig(
        do_sample=True,
        guidance_scale=3.0,
        max_length=1500,
        top_k=250,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        decoder_start_token_id=CODEBOOK_SIZE,
    )
    feature_extractor = EncodecFeatureExtractor(
        feature_size=channels, sampling_rate=codec["sampling_rate"], padding_value=0.0
    )
    processor = MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    return model, processor


def save_random_musicgen(architecture: str, directory: Path) -> Path:
    """Build and save atomically (built in a sibling temp dir, then renamed); return `directory`."""

    def write(folder: Path) -> None:
        model, processor = build_random_musicgen(architecture)
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
        if ARCHITECTURES[architecture].get("kind") == "audiogen":
            write_audiogen_marker(folder)

    return save_random_model(architecture, directory, write)
