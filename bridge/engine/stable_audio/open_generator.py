"""Text to audio and variations on a loaded Stable Audio Open model (diffusers' StableAudioPipeline).

What differs from Stable Audio 3 (generator.py), all from the model card's recommended settings
(huggingface.co/stabilityai/stable-audio-open-1.0: 100 steps, guidance 7) and diffusers' pipeline:
- the pipeline always diffuses its whole window (1024 latent frames, 47.55 s for 1.0) and is told the
  clip's length through its seconds conditioning; only the frames the clip needs (and a few more, so
  the autoencoder's convolutions see their right-hand context) are decoded;
- a variation starts from the clip's latents with noise at a lower level than the sampler's highest,
  as stable-audio-tools' `init_noise_level` does: the strength picks that level between the sampler's
  lowest and highest noise, evenly in log scale (1: the highest, nothing of the clip is kept);
- it cannot continue audio: it has no inpainting.
"""

import math

import numpy as np

from bridge.engine.cpu_kernels import CpuIdentity
from bridge.engine.stable_audio.family import cannot_continue_message
from bridge.engine.stable_audio.generator import StableAudioGenerator
from bridge.engine.stable_audio.open_pipeline import LoadedStableAudioOpen
from bridge.engine.stable_audio.prompts import stable_audio_open_prompt
from bridge.errors import InvalidParameterError

OPEN_STEPS = 100
OPEN_GUIDANCE = 7.0
# Latent frames decoded past the clip's end. Oobleck's decoder sees about 15 frames to the right (its
# first convolution 3, the first upsampling block's dilated residual units 78 samples at 8x the latent
# rate, the later blocks 1-2 more); with 16 the clip decodes as in the whole window, to float rounding
# (tested on the tiny model, which has the real kernels, strides and dilations).
DECODE_CONTEXT_FRAMES = 16


class StableAudioOpenGenerator(StableAudioGenerator):
    """Runs requests on one loaded Stable Audio Open model. Not thread-safe: one request at a time."""

    loaded: LoadedStableAudioOpen
    # bf16 moved a take by 0.10 of a new seed at the real size (bench/stable_audio_speed.py --size open-1.0),
    # five times the bound: fast mode runs fp32.
    BF16_FAITHFUL = False

    def __init__(self, loaded: LoadedStableAudioOpen, steps: int = OPEN_STEPS, cpu: CpuIdentity | None = None) -> None:
        super().__init__(loaded, steps, cpu)

    def prompt_text(self, words: str, bpm: float | None) -> str:
        return stable_audio_open_prompt(words, bpm)

    def init_noise_level(self, strength: float) -> float:
        """The noise a variation starts from: the sampler's lowest at strength 0, its highest at 1."""
        config = self.loaded.text_to_audio.scheduler.config
        return float(config.sigma_min * (config.sigma_max / config.sigma_min) ** strength)

    def _text_to_audio(self, text: str, samples: int, seed: int, on_step) -> np.ndarray:
        return self._run(self.loaded.text_to_audio, text, samples, seed, on_step)

    def _continue(self, text: str, prompt_audio: np.ndarray, new_samples: int, seed: int, on_step) -> np.ndarray:
        raise InvalidParameterError(cannot_continue_message(self.loaded.model_id))

    def _vary(self, text: str, audio: np.ndarray, strength: float, seed: int, on_step) -> np.ndarray:
        samples = audio.shape[0]
        self._check_length(samples)
        pipeline = self.loaded.text_to_audio
        scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, sigma_max=self.init_noise_level(strength))
        from_the_clip = type(pipeline)(**{**pipeline.components, "scheduler": scheduler})
        from_the_clip.set_progress_bar_config(disable=True)
        return self._run(
            from_the_clip, text, samples, seed, on_step,
            initial_audio_waveforms=self._tensor(audio), initial_audio_sampling_rate=self.loaded.sample_rate,
        )

    def _run(self, pipeline, text: str, samples: int, seed: int, on_step, **audio_input) -> np.ndarray:
        latents = pipeline(
            text, audio_end_in_s=samples / self.loaded.sample_rate, num_inference_steps=self.steps,
            guidance_scale=OPEN_GUIDANCE, generator=self._generator(seed), output_type="latent",
            callback=lambda step, timestep, tensors: on_step(pipeline, step, timestep, tensors), **audio_input,
        ).audios
        frames = min(math.ceil(samples / self.loaded.samples_per_latent_frame) + DECODE_CONTEXT_FRAMES, latents.shape[-1])
        return self._decode(latents[..., :frames])[:samples]
