"""Stable Audio Open with random weights, built locally from explicit configs: `tiny-stable-audio-open`.

The real classes of `stabilityai/stable-audio-open-1.0` (T5 encoder, AutoencoderOobleck with the real
2048x downsampling at 44.1 kHz stereo, StableAudioDiTModel, the projection of text and seconds) at
tiny widths, saved with `save_pretrained` (safetensors) and loaded through the same `from_pretrained`
path as the downloaded model. Two things differ from the real one, both for test speed:
- the window is 64 latent frames (2.97 s) instead of 1024 (47.55 s): the pipeline always diffuses
  its whole window, and the autoencoder runs at the audio rate;
- the scheduler is EDMDPMSolverMultistepScheduler, which needs no `torchsde` (the real checkpoint's
  CosineDPMSolverMultistepScheduler draws its noise from a torchsde Brownian tree).
Zero-initialised parameters are re-randomised as for tiny-stable-audio (random_models.py).
"""

import string
import warnings
from pathlib import Path

from bridge.engine.stable_audio.random_models import (
    SAMPLE_RATE,
    randomise_zero_matrices,
    save_random_pipeline,
)

TINY_OPEN = "tiny-stable-audio-open"
_TEXT_WIDTH = 16
# Oobleck's encoder outputs `encoder_hidden_size` channels, split into the latents' mean and scale.
_LATENT_CHANNELS = 4
# The window (64 frames x 2048 samples at 44.1 kHz = 2.97 s), floored to 0.1 s as for the real model.
TINY_OPEN_MAX_SECONDS = 2.9
# The tokenizer pads every prompt to this many tokens (the real T5 tokenizer: 128).
_TOKENS = 64

OPEN_ARCHITECTURES = {
    TINY_OPEN: dict(
        transformer=dict(
            sample_size=64, in_channels=_LATENT_CHANNELS, num_layers=2, attention_head_dim=8, num_attention_heads=4,
            num_key_value_attention_heads=2, out_channels=_LATENT_CHANNELS, cross_attention_dim=_TEXT_WIDTH,
            time_proj_dim=16, global_states_input_dim=2 * _TEXT_WIDTH, cross_attention_input_dim=_TEXT_WIDTH,
        ),
        vae=dict(
            encoder_hidden_size=2 * _LATENT_CHANNELS, downsampling_ratios=[2, 4, 4, 8, 8], channel_multiples=[1, 1, 1, 1, 1],
            decoder_channels=4, decoder_input_channels=_LATENT_CHANNELS, audio_channels=2, sampling_rate=SAMPLE_RATE,
        ),
        text_encoder=dict(d_model=_TEXT_WIDTH, d_kv=4, d_ff=32, num_layers=2, num_heads=2),
        # The real model's seconds conditioners: 0-512 s.
        projection_model=dict(text_encoder_dim=_TEXT_WIDTH, conditioning_dim=_TEXT_WIDTH, min_value=0, max_value=512),
        # stable-audio-open-1.0's scheduler_config.json: sigma 0.3-500, v-prediction.
        scheduler=dict(sigma_min=0.3, sigma_max=500.0, sigma_data=1.0, prediction_type="v_prediction"),
    ),
}


def tiny_t5_tokenizer():
    """A T5 (unigram) tokenizer over letters, digits and punctuation: any English prompt tokenizes."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    vocab += [(char, -2.0) for char in string.ascii_letters + string.digits + string.punctuation]
    vocab += [(f"▁{char}", -1.5) for char in string.ascii_letters + string.digits]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=_TOKENS)


def build_random_stable_audio_open(architecture: str = TINY_OPEN, seed: int = 0):
    """A StableAudioPipeline with random weights for `architecture` (a key of OPEN_ARCHITECTURES)."""
    import torch
    from diffusers import (
        AutoencoderOobleck,
        EDMDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
    )
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel

    spec = OPEN_ARCHITECTURES[architecture]
    # Oobleck's convolutions use the old weight-norm API: a deprecation notice producers need not see.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.nn.utils.weight_norm")
    torch.manual_seed(seed)
    tokenizer = tiny_t5_tokenizer()
    components = dict(
        transformer=StableAudioDiTModel(**spec["transformer"]),
        vae=AutoencoderOobleck(**spec["vae"]),
        text_encoder=T5EncoderModel(T5Config(vocab_size=len(tokenizer), **spec["text_encoder"])),
        tokenizer=tokenizer,
        projection_model=StableAudioProjectionModel(**spec["projection_model"]),
        scheduler=EDMDPMSolverMultistepScheduler(**spec["scheduler"]),
    )
    generator = torch.Generator().manual_seed(seed)
    for name in ("transformer", "vae", "projection_model"):
        randomise_zero_matrices(components[name], generator)
    return StableAudioPipeline(**components)


def save_random_stable_audio_open(architecture: str, directory: Path) -> Path:
    return save_random_pipeline(architecture, directory, build_random_stable_audio_open)
