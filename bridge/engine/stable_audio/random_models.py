"""Stable Audio 3 pipelines with random weights, built locally from explicit configs.

`tiny-stable-audio` has the real classes and the real audio format (44.1 kHz stereo, 4096 samples
per latent frame, ~10.8 latent frames/s) with tiny widths: every path of the family (text to audio,
inpainting, audio to audio) runs offline in well under a second. It is saved with `save_pretrained`
(safetensors) and loaded through the same `from_pretrained` path as a converted checkpoint.

Several of these constructors zero their output projections (the DiT's and the autoencoder's, as
trained diffusion models often start): a random model built that way ignores its inputs, so every
seed and prompt would give the same audio. The builder re-randomises every all-zero matrix.
"""

import string
import warnings
from collections.abc import Callable
from pathlib import Path

from bridge.engine.random_model_folder import save_random_model

SAMPLE_RATE = 44100
# Width shared by the text encoder's output, the DiT's cross/global conditioning and the duration
# embedding: the duration embedding is appended to the text tokens, so the three must agree.
_TINY_CONDITIONING_WIDTH = 16
# The longest clip in one pass is the duration embedder's clamp (384 s for SA3 Medium); the tiny
# model takes Stable Audio Open's 47 s so that "too long" is testable at a small size.
TINY_MAX_SECONDS = 47.0

ARCHITECTURES = {
    "tiny-stable-audio": dict(
        transformer=dict(
            io_channels=8, patch_size=1, embed_dim=32, depth=2, num_heads=4, cond_token_dim=_TINY_CONDITIONING_WIDTH,
            global_cond_dim=_TINY_CONDITIONING_WIDTH, local_add_cond_dim=9, timestep_features_dim=16, ff_mult=2,
            num_memory_tokens=3, use_differential_attention=False,
        ),
        vae=dict(
            audio_channels=2, patch_size=256, encoder_channels=8, encoder_c_mults=(2,), encoder_strides=(16,),
            encoder_transformer_depths=(1,), latent_dim=8, use_differential_attention=False, dim_heads=4, ff_mult=2,
            sampling_rate=SAMPLE_RATE,
        ),
        text_encoder=dict(
            hidden_size=_TINY_CONDITIONING_WIDTH, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=8, max_position_embeddings=256, sliding_window=256,
            layer_types=["full_attention", "full_attention"],
        ),
        duration_embedder=dict(output_dim=_TINY_CONDITIONING_WIDTH, fourier_dim=16, max_val=TINY_MAX_SECONDS),
    ),
}


def tiny_gemma_tokenizer():
    """A Gemma (BPE) tokenizer over letters, digits and punctuation: any English prompt tokenizes."""
    from transformers import GemmaTokenizer

    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁"]
    tokens += list(string.ascii_letters + string.digits + string.punctuation)
    tokens += [f"▁{char}" for char in string.ascii_letters + string.digits]
    return GemmaTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[])


def _text_encoder(spec: dict, vocab_size: int):
    from transformers import T5GemmaConfig, T5GemmaEncoderModel
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    module = T5GemmaModuleConfig(vocab_size=vocab_size, **spec).to_dict()
    return T5GemmaEncoderModel(T5GemmaConfig(encoder=module, decoder=module, is_encoder_decoder=False))


def randomise_zero_matrices(module, generator) -> None:
    """Give every all-zero parameter random values (scaled by its fan-in), so a random model hears its inputs."""
    import torch

    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.ndim >= 1 and parameter.numel() > 1 and not parameter.any():
                fan_in = parameter.shape[-1] if parameter.ndim >= 2 else 1
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in**0.5)


def build_random_stable_audio(architecture: str, seed: int = 0):
    """A StableAudio3Pipeline with random weights for `architecture` (a key of ARCHITECTURES)."""
    import torch
    from diffusers import (
        AutoencoderSAME,
        FlowMatchEulerDiscreteScheduler,
        StableAudio3DiTModel,
        StableAudio3Pipeline,
    )
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    spec = ARCHITECTURES[architecture]
    # SAME's convolutions use the old weight-norm API: a deprecation notice producers need not see.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.nn.utils.weight_norm")
    torch.manual_seed(seed)
    tokenizer = tiny_gemma_tokenizer()
    components = dict(
        transformer=StableAudio3DiTModel(**spec["transformer"]),
        vae=AutoencoderSAME(**spec["vae"]),
        text_encoder=_text_encoder(spec["text_encoder"], len(tokenizer)),
        tokenizer=tokenizer,
        duration_embedder=StableAudio3DurationEmbedder(**spec["duration_embedder"]),
        # The distilled checkpoints' sampler: 8 "ping-pong" steps that re-noise between steps.
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0, stochastic_sampling=True),
    )
    generator = torch.Generator().manual_seed(seed)
    for name in ("transformer", "vae", "duration_embedder"):
        randomise_zero_matrices(components[name], generator)
    return StableAudio3Pipeline(**components)


def save_random_pipeline(architecture: str, directory: Path, build: Callable[[str], object]) -> Path:
    """Build `build(architecture)` (a diffusers pipeline) and save it atomically (built in a sibling temp
    dir, then renamed) as safetensors; return `directory`."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    return save_random_model(
        architecture, directory, lambda folder: build(architecture).save_pretrained(folder, safe_serialization=True)
    )


def save_random_stable_audio(architecture: str, directory: Path) -> Path:
    return save_random_pipeline(architecture, directory, build_random_stable_audio)
