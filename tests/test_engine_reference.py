"""Segue's exact mode (its own modules, sampling loop and decoder) against transformers' own `generate`
on the same checkpoint: with greedy decoding the codes are equal.

(tests/test_engine_fast.py holds the reference loop and the exact mode equal too.)
"""

import numpy as np
import pytest
import torch

from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.request import GenerationRequest


def reference_codes(loaded, **inputs) -> np.ndarray:
    """Codes from `model.generate`, taken where it hands them to EnCodec (it returns only audio)."""
    codec = loaded.model.audio_encoder
    captured = []
    original_decode = codec.decode

    def recording_decode(audio_codes, *args, **kwargs):
        captured.append(audio_codes.clone())
        return original_decode(audio_codes, *args, **kwargs)

    codec.decode = recording_decode
    try:
        with torch.inference_mode():
            loaded.model.generate(**inputs, do_sample=False)
    finally:
        del codec.decode
    return captured[0][0].cpu().numpy()  # (chunks, batch, codebooks, frames) -> (batch, codebooks, frames)


@pytest.mark.parametrize("cfg", [3.0, 1.0])
def test_text_only_greedy_codes_equal_transformers_generate(tiny_model, tiny_reference_model, cfg):
    frames = 60
    inputs = tiny_reference_model.processor(text=["deep house groove"], return_tensors="pt")
    expected = reference_codes(tiny_reference_model, **inputs, guidance_scale=cfg, max_new_tokens=frames + 3)
    ours = MusicGenerator(tiny_model).generate(
        GenerationRequest(prompt="deep house groove", model="tiny", seconds=frames / 50, greedy=True, cfg=cfg, quality="exact")
    )
    assert expected.shape == (1, 4, frames)
    np.testing.assert_array_equal(ours.takes[0].codes, expected[0])


def test_audio_prompted_greedy_codes_equal_transformers_generate(tiny_model, tiny_reference_model):
    rate = tiny_model.sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 110 * np.arange(rate) / rate)).astype(np.float32)  # 1 s = 50 frames
    frames = 40
    inputs = tiny_reference_model.processor(
        text=["funk bass line"], audio=[audio], sampling_rate=rate, padding=True, return_tensors="pt"
    )
    expected = reference_codes(tiny_reference_model, **inputs, guidance_scale=3.0, max_new_tokens=frames + 3)
    ours = MusicGenerator(tiny_model).generate(
        GenerationRequest(
            prompt="funk bass line", model="tiny", audio=audio, audio_sample_rate=rate, seconds=frames / 50, greedy=True,
            quality="exact",
        )
    )
    prompt_frames = 50
    assert expected.shape == (1, 4, prompt_frames + frames)
    np.testing.assert_array_equal(ours.takes[0].codes, expected[0, :, prompt_frames:])
