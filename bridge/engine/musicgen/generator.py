"""Text-to-music, continuation and variations on a loaded model, with progress, streaming and cancel.

Lengths are exact: the request's duration becomes a sample count (bars at a tempo are rounded once,
at the end), enough codec frames are generated to cover it, and the audio is cut to it.
Clips longer than the model's 30 s window are generated in sliding windows (plan_windows): every
window, the first included, sees at most the last 12 s of codes, so each adds at least 18 s.
"""

import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch

from bridge.audio.io import match_channels, read_audio, resample
from bridge.engine.cpu_kernels import KernelChoice
from bridge.engine.events import GenerationResult, Take
from bridge.engine.last_used import LastUsed
from bridge.engine.musicgen.codec import BackgroundStream, StreamingDecoder, encode_audio, prompt_stream_state
from bridge.engine.musicgen.fast_decoder import PREFIX_CONDITIONED_DECODERS, FastDecoder
from bridge.engine.musicgen.kernels import choose_decoder
from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.melody import check_melody_request, melody_conditioner
from bridge.engine.musicgen.prefill import prefill_row, unguided_prefill
from bridge.engine.musicgen.prepared_prompt import KEPT_PROMPTS, PreparedPrompt, prompt_key
from bridge.engine.musicgen.quality import describe_precision, graphed_for, precision_for, resolve_quality
from bridge.engine.musicgen.sampling import (
    SamplingParams,
    build_sequence,
    codebook_delays,
    encode_text,
    sample_codes,
    text_states,
)
from bridge.engine.prompt_audio import last_whole_frames
from bridge.engine.request import GenerationRequest
from bridge.errors import AudioFileError, CancelledError

WINDOW_SECONDS = 30.0
# audiocraft's MusicGen default (models/musicgen.py, set_generation_params: extend_stride=18 s of a
# 30 s window) re-prompts each later window with the last 12 s.
WINDOW_CONTEXT_SECONDS = 12.0
# Texts whose encoder states are kept: another take of the same text, or a text prepared ahead, skips
# the text encoder (T5-base: 0.1-0.2 s on the 2-core AVX2 EPYC, a fifth of a prepared first chunk).
KEPT_TEXT_STATES = 4

ProgressCallback = Callable[[int, int, float | None], None]
ChunkCallback = Callable[[int, np.ndarray], None]


class MusicGenerator:
    """Runs requests on one loaded model. Not thread-safe: one request at a time."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._decoders: dict[tuple[str, bool], FastDecoder] = {}
        self.kernel_choice: KernelChoice | None = None  # how fast mode's CPU kernel was chosen, once it was
        # Decode audio chunks beside the decoder steps (codec.BackgroundStream) instead of between them.
        # With native-int8's passive OpenMP team the steps leave a core idle often enough: on a 2-core
        # EPYC, 32.3 vs 25.9 steps/s (AVX2, quiet), 29.5 vs 26.4 (AVX2, one core busy elsewhere), 33.5
        # vs 30.8 (AVX-512). Before that kernel (AVX2, load ~5) it had not helped, 11.0 vs 11.7.
        # bench/engine_speed.py measures both on a machine. On a GPU a CUDA graph may be captured
        # while a chunk runs, so chunks stay between the steps there.
        self.stream_on_thread = loaded.codec_device.type == "cpu" and loaded.device.type == "cpu"
        # audio prompts encoded (and their rows prefilled) ahead of their jobs, by prompt_key
        self.prompts: LastUsed[str, PreparedPrompt] = LastUsed(KEPT_PROMPTS)
        self.texts: LastUsed[str, tuple[torch.Tensor, torch.Tensor]] = LastUsed(KEPT_TEXT_STATES)  # text_states

    def decoder_for(self, quality: str) -> tuple[FastDecoder, str]:
        """The decoder for a quality mode (built on first use: quantising takes a few seconds) and its precision.

        On a CPU, fast mode's int8 kernel is the one measured fastest and faithful on this machine
        (bridge/engine/musicgen/kernels.py; measured at the first load, then cached).
        """
        precision, graphed = precision_for(quality, self.loaded.device), graphed_for(quality, self.loaded.device)
        if (precision, graphed) not in self._decoders:
            decoder = None
            if precision == "int8":
                decoder, self.kernel_choice = choose_decoder(self.loaded)
            self._decoders[precision, graphed] = decoder or FastDecoder(self.loaded, "native", graphed)
        decoder = self._decoders[precision, graphed]
        return decoder, decoder.precision

    @property
    def kernel(self) -> str:
        """Fast mode's CPU kernel and its measured time, for EngineReady and `segue models` ('' before it is chosen)."""
        return self.kernel_choice.describe() if self.kernel_choice and self.kernel_choice.kernel else ""

    def prepare(self, quality: str = "auto") -> None:
        """Build the decoder for `quality` now, so the first request does not wait for it."""
        self.decoder_for(quality)

    def target_samples(self, request: GenerationRequest) -> int:
        """Exact length of the new material in samples at the model rate."""
        return request.target_samples(self.loaded.sample_rate)

    def prepare_prompt(self, request: GenerationRequest) -> tuple[np.ndarray | None, torch.Tensor | None]:
        """The audio prompt at the model rate and channels, cut to whole codec frames, and its codes."""
        prepared = self.prompt_for(request)
        return (None, None) if prepared is None else (prepared.audio, prepared.codes)

    def prompt_for(self, request: GenerationRequest) -> PreparedPrompt | None:
        """The request's audio prompt, encoded: from the cache of prepared prompts, else encoded now and kept."""
        window = request.prompt_window_seconds()
        if request.prompt_codes is not None:
            codes = np.asarray(request.prompt_codes)
            key = prompt_key(self.loaded.model_id, codes, 0, window)
            if (prepared := self.prompts.get(key)) is None:
                codes = torch.as_tensor(codes, dtype=torch.long, device=self.loaded.device)
                if window is not None:
                    codes = codes[:, -max(1, round(window * self.loaded.frame_rate)) :]
                prepared = self.prompts.put(key, PreparedPrompt(None, codes))
            return prepared
        if request.audio_path is not None:
            audio, rate = read_audio(request.audio_path)
        elif request.audio is not None:
            audio, rate = np.asarray(request.audio, dtype=np.float32), int(request.audio_sample_rate)
            if audio.size == 0:
                raise AudioFileError("the audio to continue is empty")
        else:
            return None
        key = prompt_key(self.loaded.model_id, audio, rate, window)
        if (prepared := self.prompts.get(key)) is None:
            audio = match_channels(resample(audio, rate, self.loaded.sample_rate), self.loaded.audio_channels)
            audio = last_whole_frames(audio, self.loaded.sample_rate, window, self.loaded.samples_per_frame)
            prepared = self.prompts.put(key, PreparedPrompt(audio, encode_audio(self.loaded, audio)))
        return prepared

    def prepare_request(self, request: GenerationRequest, should_cancel: Callable[[], bool] | None = None) -> bool:
        """Do now what `request`'s first step will need: encode its audio prompt, run its frames through
        the streaming decoder, prefill the unguided row of its first window (it needs no text) and, when
        the request has a text, that text's guided row (bridge/engine/musicgen/prefill.py). A later job
        with the same prompt audio, model and quality reuses them; the guided row if its text is the
        same. Returns whether there was a prompt. `should_cancel` is asked between the parts and between
        the guided row's layers: a text overtaken by the producer's next edit is dropped at once, while
        what serves any text (the encoding, the unguided row) is finished for the next preparation.
        """

        def check() -> None:
            if should_cancel is not None and should_cancel():
                raise CancelledError("preparation cancelled")

        request.validate()
        prepared = self.prompt_for(request)
        if prepared is None:
            return False
        check()
        self._decode_prompt_frames(prepared)
        if self.loaded.model.decoder.config.model_type in PREFIX_CONDITIONED_DECODERS:
            return True  # every row depends on the melody and the text too
        check()
        decoder, _ = self.decoder_for(request.quality)
        context_frames = self._windows(prepared.codes.shape[-1], 1)[0][0]
        context = prepared.codes[None, :, prepared.codes.shape[-1] - context_frames :]
        sequence, _, position = build_sequence(self.loaded, context, 1, 1)
        row = sequence[0, :, :position]
        rows = prepared.rows(self._decoder_key(decoder), request.prompt or None)
        if request.cfg > 1.0:
            rows.unguided.kept(row, lambda: unguided_prefill(decoder, row))
        if request.prompt:
            check()
            states, mask = self.text_states(request.prompt)
            rows.guided.kept(row, lambda: prefill_row(decoder, row, states, mask, should_cancel))
        return True

    def text_states(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """`text`'s encoder states and mask (sampling.text_states), kept for the last KEPT_TEXT_STATES texts."""
        return self.texts.get_or_make(text, lambda: text_states(self.loaded, text))

    def _decode_prompt_frames(self, prepared: PreparedPrompt) -> None:
        """Run the prompt's frames through the streaming decoder's LSTM, once per prompt.

        The first chunk after an audio prompt needs every prompt frame through EnCodec's LSTM (8 s:
        400 frames, each reading its 32 MB of recurrent weights). Here it runs before the first step
        on every thread (native_lstm.py): a layer's 16 MB stay in a 32 MB last-level cache, and the
        400 frames took 0.21-0.23 s in a job on the 2-core AVX2 EPYC. On the one-thread chunk thread
        beside the first steps, as before, they took 1.0-1.2 s, and the first chunk waited for them.
        """
        if prepared.stream is None and prepared.codes.shape[-1] > 0:
            prepared.stream = prompt_stream_state(self.loaded, prepared.codes)

    def _windows(self, prompt_frames: int, new_frames: int) -> list[tuple[int, int]]:
        loaded = self.loaded
        if loaded.windows is None:
            return plan_windows(prompt_frames, new_frames, loaded.frame_rate, WINDOW_SECONDS, WINDOW_CONTEXT_SECONDS)
        return plan_windows(prompt_frames, new_frames, loaded.frame_rate, loaded.windows.seconds,
                            loaded.windows.context_seconds)

    @staticmethod
    def _decoder_key(decoder: FastDecoder) -> str:
        return f"{decoder.precision}/{decoder.kernel}"

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Generate every take of `request`.

        on_progress(steps_done, steps_total, eta_seconds); on_chunk(start_frame, audio) with audio of
        shape (takes, frames, channels); should_cancel() is polled after every decoder step and stops
        the job with CancelledError.
        """
        started = time.monotonic()
        request.validate()
        loaded = self.loaded
        check_melody_request(loaded, request)
        base_seed = request.seed if request.seed is not None else random.randrange(2**31)
        seeds = [base_seed + index for index in range(request.variations)]
        prepared = self.prompt_for(request)
        if prepared is not None:
            self._decode_prompt_frames(prepared)
        prompt_audio, prompt_codes = (None, None) if prepared is None else (prepared.audio, prepared.codes)
        prompt_frames = 0 if prompt_codes is None else prompt_codes.shape[-1]

        total_samples = self.target_samples(request)
        new_frames = math.ceil(total_samples / loaded.samples_per_frame)
        windows = self._windows(prompt_frames, new_frames)
        max_delay = max(codebook_delays(loaded))
        steps_total = sum(frames + max_delay for _, frames in windows)

        params = SamplingParams(request.temperature, request.top_k, request.top_p, request.cfg, request.greedy)
        decoder, precision = self.decoder_for(request.quality)
        conditioning = encode_text(loaded, request.prompt, request.variations, params.guided,
                                   self.text_states(request.prompt))
        melody = melody_conditioner(loaded, request, conditioning, total_samples, prompt_audio, prompt_codes)
        generators = [torch.Generator(device=loaded.device).manual_seed(seed) for seed in seeds]
        stream = StreamingDecoder(
            loaded,
            on_chunk or (lambda start, audio: None),
            start_sample=prompt_frames * loaded.samples_per_frame,
            total_samples=total_samples,
            warm=None if prepared is None else prepared.stream,  # the prompt's frames through the LSTM already
            takes=request.variations,
        )
        if self.stream_on_thread:
            stream = BackgroundStream(stream)

        codes = None if prompt_codes is None else prompt_codes[None].expand(request.variations, -1, -1)
        steps_before = 0
        step_started = time.monotonic()
        for context_frames, frames in windows:
            history = codes  # every frame so far; the window sees only its context
            context = None if history is None else history[..., history.shape[-1] - context_frames :]

            def on_step(step, steps, complete, history=history, context_frames=context_frames, steps_before=steps_before):
                if should_cancel is not None and should_cancel():
                    raise CancelledError("generation cancelled")
                done = steps_before + step
                if on_progress is not None:
                    elapsed = time.monotonic() - step_started
                    on_progress(done, steps_total, elapsed / done * (steps_total - done))
                whole = complete if history is None else torch.cat([history, complete[..., context_frames:]], -1)
                stream.update(whole)

            if melody is not None:  # the window's own 30 s of the melody, from its first context frame
                new_before = (0 if history is None else history.shape[-1]) - prompt_frames
                window_start = (new_before - context_frames) * loaded.samples_per_frame
                conditioning = melody.for_window(window_start)
            # The first window's rows may be prepared already (prepare_request); re-rolls reuse them.
            kept = prepared.rows(self._decoder_key(decoder), request.prompt) if prepared and steps_before == 0 else None
            window_codes = sample_codes(loaded, conditioning, context, frames, params, generators, on_step, decoder, kept)
            new_part = window_codes[..., context_frames:]
            codes = new_part if codes is None else torch.cat([codes, new_part], dim=-1)
            steps_before += frames + max_delay

        audio = stream.finish(codes)
        new_codes = codes[..., prompt_frames:].cpu().numpy()
        takes = [
            Take(index=i, seed=seeds[i], audio=audio[i], prompt_audio=prompt_audio, codes=new_codes[i])
            for i in range(request.variations)
        ]
        return GenerationResult(
            request=request,
            sample_rate=loaded.sample_rate,
            takes=takes,
            model_id=loaded.model_id,
            device=str(loaded.device),
            seconds_taken=time.monotonic() - started,
            quality=resolve_quality(request.quality),
            precision=describe_precision(loaded, precision),
            kernel=decoder.kernel,
        )


def plan_windows(
    prompt_frames: int,
    new_frames: int,
    frame_rate: int,
    window_seconds: float = WINDOW_SECONDS,
    context_seconds: float = WINDOW_CONTEXT_SECONDS,
) -> list[tuple[int, int]]:
    """Split generation into (context frames, new frames) windows of at most `window_seconds` each
    (MusicGen: 30 s windows with 12 s of context; AudioGen: 10 s with 8 s).

    Every window's context is at most the last `context_seconds` of codes: later windows, as
    audiocraft's, and the first one too, where audiocraft would take the whole prompt (a 30 s prompt
    would be a full-window prefill for a single new frame). So every window but the last adds at
    least `window_seconds - context_seconds` of audio (18 s for MusicGen); the last adds what remains.
    """
    window = round(window_seconds * frame_rate)
    context_cap = min(round(context_seconds * frame_rate), window - 1)
    windows = []
    context = min(prompt_frames, context_cap)
    remaining = new_frames
    while remaining > 0:
        frames = min(remaining, window - context)
        windows.append((context, frames))
        remaining -= frames
        context = min(context_cap, context + frames)
    return windows
