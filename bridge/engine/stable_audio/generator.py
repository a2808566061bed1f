"""Text to audio, continuation by inpainting and variations on a loaded Stable Audio 3 model.

Diffusion refines the whole clip at once, so there is nothing to stream: progress is reported after
every diffusion step, cancel is checked between steps, and the finished audio is sent as one chunk.

Lengths are exact: the clip is generated on whole latent frames (4096 samples) covering the request
and cut to its sample count. Each take runs with its own seeded generator, so a take's audio
depends on its seed, inputs and model only, not on how many takes were asked for.

Continuation: the audio prompt, cut to whole latent frames (dropping its oldest samples, so the new
material starts exactly where it ends), is the known part and the new bars are inpainted after it.
The pipeline regenerates the known part too (only as well as the autoencoder round-trips it), so a
take holds only the new material; the producer's audio is never replaced by the model's version of
it, and the join is made where the take is fitted to its source (bridge.workflow.fit).
"""

import math
import random
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from bridge.audio.io import match_channels, read_audio, resample
from bridge.engine.cpu_kernels import CpuIdentity, cpu_identity
from bridge.engine.events import GenerationResult, Take
from bridge.engine.prompt_audio import last_whole_frames
from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.loading import LoadedStableAudio
from bridge.engine.stable_audio.precision import (
    describe_choice,
    diffusion_precision,
    dit_precision,
    resolve_quality,
)
from bridge.engine.stable_audio.prompts import stable_audio_prompt
from bridge.errors import AudioFileError, CancelledError, InvalidParameterError

# The distilled checkpoints are trained for 8 steps (diffusers' default when stochastic_sampling).
DEFAULT_STEPS = 8

ProgressCallback = Callable[[int, int, float | None], None]
ChunkCallback = Callable[[int, np.ndarray], None]


class StableAudioGenerator:
    """Runs requests on one loaded model. Not thread-safe: one request at a time."""

    # Whether fast mode may run the DiT in bf16: measured within the bound at the model's real size
    # (bridge.engine.stable_audio.precision).
    BF16_FAITHFUL = True

    def __init__(self, loaded: LoadedStableAudio, steps: int = DEFAULT_STEPS, cpu: CpuIdentity | None = None) -> None:
        self.loaded = loaded
        self.steps = steps
        # What decides fast mode's precision (bridge.engine.stable_audio.precision); tests pass another CPU.
        self.cpu = cpu if cpu is not None else (cpu_identity() if loaded.device.type == "cpu" else None)

    def prepare(self, quality: str = "auto") -> None:
        """Nothing to build ahead: fast mode's bf16 is autocast per request (see bench/stable_audio_speed.py)."""

    def precision_for(self, quality: str) -> str:
        """The diffusion transformer's precision for `quality`: 'bf16', 'fp32' or 'fp16'."""
        loaded_precision = "fp16" if self.loaded.dtype == torch.float16 else "fp32"
        if not self.BF16_FAITHFUL:
            return loaded_precision
        return diffusion_precision(quality, self.loaded.device.type, loaded_precision, self.cpu)

    def prompt_text(self, words: str, bpm: float | None) -> str:
        """The text the model gets: the producer's words with the tempo as this model was trained to read it."""
        return stable_audio_prompt(words, bpm)

    def target_samples(self, request: GenerationRequest) -> int:
        """Exact length of the new material in samples at the model rate."""
        return request.target_samples(self.loaded.sample_rate)

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Generate every take of `request`; on_chunk gets the finished takes once, shape (takes, frames, channels)."""
        started = time.monotonic()
        request.validate()
        base_seed = request.seed if request.seed is not None else random.randrange(2**31)
        seeds = [base_seed + index for index in range(request.variations)]
        text = self.prompt_text(request.prompt, request.bpm)
        steps_total = self.steps * len(seeds)
        steps_started = time.monotonic()

        def step_callback(take_index: int):
            def on_step(pipeline, step, timestep, tensors):
                if should_cancel is not None and should_cancel():
                    raise CancelledError("generation cancelled")
                done = take_index * self.steps + step + 1
                if on_progress is not None:
                    elapsed = time.monotonic() - steps_started
                    on_progress(done, steps_total, elapsed / done * (steps_total - done))
                return tensors

            return on_step

        prompt_audio = None
        if request.init_audio_path is not None:
            init_audio = self._read("the clip to vary", path=request.init_audio_path)
            run = partial(self._vary, text, init_audio, request.strength)
        elif request.is_continuation:
            prompt_audio = self._prompt_audio(request)
            run = partial(self._continue, text, prompt_audio, self.target_samples(request))
        else:
            samples = self.target_samples(request)
            self._check_length(samples)
            run = partial(self._text_to_audio, text, samples)

        precision = self.precision_for(request.quality)
        with dit_precision(self.loaded.text_to_audio.transformer, precision):
            audio = [run(seed, step_callback(index)) for index, seed in enumerate(seeds)]
        if on_chunk is not None:
            on_chunk(0, np.stack(audio))
        return GenerationResult(
            request=request,
            sample_rate=self.loaded.sample_rate,
            takes=[Take(index=i, seed=seeds[i], audio=audio[i], prompt_audio=prompt_audio) for i in range(len(seeds))],
            model_id=self.loaded.model_id,
            device=str(self.loaded.device),
            seconds_taken=time.monotonic() - started,
            quality=resolve_quality(request.quality),
            precision=precision,
            kernel=describe_choice(request.quality, precision, self.loaded.device.type, self.cpu, self.BF16_FAITHFUL),
        )

    # -- the three ways to make a take ---------------------------------------------------------------

    def _text_to_audio(self, text: str, samples: int, seed: int, on_step) -> np.ndarray:
        frames = self._latent_frames(samples)
        latents = self.loaded.text_to_audio(
            text, duration=self._duration(frames), num_inference_steps=self.steps, generator=self._generator(seed),
            callback_on_step_end=on_step, output_type="latent",
        ).audios
        return self._decode(latents)[:samples]

    def _continue(self, text: str, prompt_audio: np.ndarray, new_samples: int, seed: int, on_step) -> np.ndarray:
        per_frame = self.loaded.samples_per_latent_frame
        known_frames = prompt_audio.shape[0] // per_frame
        frames = known_frames + self._latent_frames(new_samples)
        self._check_length(frames * per_frame)
        reference = np.zeros((frames * per_frame, self.loaded.audio_channels), dtype=np.float32)
        reference[: prompt_audio.shape[0]] = prompt_audio
        mask = torch.zeros(1, 1, frames, device=self.loaded.device)
        mask[..., :known_frames] = 1.0  # 1: keep, 0: inpaint
        latents = self.loaded.inpaint(
            text, duration=self._duration(frames), audio=self._tensor(reference), mask=mask,
            num_inference_steps=self.steps, generator=self._generator(seed), callback_on_step_end=on_step,
            output_type="latent",
        ).audios
        start = known_frames * per_frame
        return self._decode(latents)[start : start + new_samples]

    def _vary(self, text: str, audio: np.ndarray, strength: float, seed: int, on_step) -> np.ndarray:
        samples = audio.shape[0]
        self._check_length(samples)
        frames = self._latent_frames(samples)
        padded = np.zeros((frames * self.loaded.samples_per_latent_frame, audio.shape[1]), dtype=np.float32)
        padded[:samples] = audio
        latents = self.loaded.audio_to_audio(
            text, duration=self._duration(frames), audio=self._tensor(padded), init_noise_level=strength,
            num_inference_steps=self.steps, generator=self._generator(seed), callback_on_step_end=on_step,
            output_type="latent",
        ).audios
        return self._decode(latents)[:samples]

    # -- helpers ---------------------------------------------------------------------------------------

    def _latent_frames(self, samples: int) -> int:
        return math.ceil(samples / self.loaded.samples_per_latent_frame)

    def _duration(self, frames: int) -> float:
        # The pipelines size their latents as ceil(duration * rate / 4096): half a sample short of the
        # frames' end keeps float rounding from adding a frame.
        return (frames * self.loaded.samples_per_latent_frame - 0.5) / self.loaded.sample_rate

    def _check_length(self, samples: int) -> None:
        seconds, longest = samples / self.loaded.sample_rate, self.loaded.max_seconds
        if seconds > longest:
            raise InvalidParameterError(
                f"{self.loaded.model_id} makes at most {longest:g} s in one pass (audio prompt included), "
                f"got {seconds:.1f} s"
            )

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.loaded.device).manual_seed(seed)

    def _tensor(self, audio: np.ndarray) -> torch.Tensor:
        """(frames, channels) -> (1, channels, frames) on the model's device and dtype."""
        return torch.from_numpy(np.ascontiguousarray(audio.T))[None].to(self.loaded.device, self.loaded.dtype)

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        audio = self.loaded.text_to_audio.vae.decode(latents).sample.clamp(-1.0, 1.0)
        return np.ascontiguousarray(audio[0].float().cpu().numpy().T)

    def _read(
        self, what: str, path: str | None = None, array: np.ndarray | None = None, rate: int | None = None
    ) -> np.ndarray:
        """A file's audio (or an array at `rate`) at the model's rate and channels; AudioFileError when
        empty or unreadable (`what` names it in the message)."""
        if path is not None:
            audio, rate = read_audio(path)
        else:
            audio = np.asarray(array, dtype=np.float32)
        if audio.size == 0:
            raise AudioFileError(f"{what} is empty")
        return match_channels(resample(audio, int(rate), self.loaded.sample_rate), self.loaded.audio_channels)

    def _prompt_audio(self, request: GenerationRequest) -> np.ndarray:
        """The audio prompt's last `prompt_window_seconds`, cut to whole latent frames from its oldest end."""
        audio = self._read("the audio to continue", request.audio_path, request.audio, request.audio_sample_rate)
        return last_whole_frames(
            audio, self.loaded.sample_rate, request.prompt_window_seconds(), self.loaded.samples_per_latent_frame
        )
