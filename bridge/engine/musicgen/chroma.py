"""The chromagram MusicGen-Melody is conditioned on, computed as audiocraft computes it.

audiocraft's `ChromaExtractor` (audiocraft/modules/chroma.py) with the settings of the released
melody models (config/conditioner/chroma2music.yaml: radix2_exp 14, argmax true): a power
spectrogram (Hann window of 16384 samples, hop 4096, centred with reflect padding, normalised by the
window's energy as torchaudio's `Spectrogram(normalized=True)` does), summed into 12 pitch classes
by librosa's chroma filter bank (tuning 0, C first), and reduced to a one-hot vector per frame: the
strongest pitch class. transformers' `MusicgenMelodyFeatureExtractor` does the same through
torchaudio, which does not load with Segue's torch, so Segue computes it here with torch.stft.

audiocraft first separates the melody with Demucs (vocals + "other" stems, dropping drums and bass,
which would dominate the chroma). Demucs is not available to Segue: the chroma is taken from the
full mix, so a melody source is best a soloed chord or lead track.

At 32 kHz a chroma frame is 4096 samples (128 ms, 7.8125 frames a second); 30 s are 235 frames,
the models' `chroma_length`.
"""

import numpy as np
import torch

from bridge.engine.melody_timeline import to_mono

CHROMA_FFT_SAMPLES = 2**14
CHROMA_HOP_SAMPLES = 2**12
NUM_PITCH_CLASSES = 12

_filter_banks: dict[int, torch.Tensor] = {}


def pitch_class_filters(sample_rate: int) -> torch.Tensor:
    """librosa's chroma filter bank (12, fft bins) for `sample_rate`, C first, tuning 0."""
    if sample_rate not in _filter_banks:
        from transformers.audio_utils import chroma_filter_bank  # librosa's, in numpy; melody jobs only

        bank = chroma_filter_bank(
            num_frequency_bins=CHROMA_FFT_SAMPLES, num_chroma=NUM_PITCH_CLASSES, sampling_rate=sample_rate, tuning=0
        )
        _filter_banks[sample_rate] = torch.from_numpy(bank).float()
    return _filter_banks[sample_rate]


def chroma_frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """One-hot chromagram (frames, 12) of float audio (samples,) or (samples, channels) at `sample_rate`.

    Frame f covers the window centred on sample f * 4096; there are 1 + samples // 4096 frames.
    Silence (an all-zero spectrum) gives pitch class 0 (C) in every frame, as audiocraft's argmax
    does: that is also the melody models' "no melody" input.
    """
    wave = torch.from_numpy(np.ascontiguousarray(to_mono(audio)))
    if wave.shape[-1] < CHROMA_FFT_SAMPLES:  # audiocraft pads short input to one window, centred
        missing = CHROMA_FFT_SAMPLES - wave.shape[-1]
        wave = torch.nn.functional.pad(wave, (missing // 2, missing - missing // 2))
    window = torch.hann_window(CHROMA_FFT_SAMPLES)
    spectrum = torch.stft(
        wave,
        n_fft=CHROMA_FFT_SAMPLES,
        hop_length=CHROMA_HOP_SAMPLES,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spectrum.abs().pow(2) / window.pow(2).sum()
    energy = pitch_class_filters(sample_rate) @ power  # (12, frames)
    strongest = energy.argmax(dim=0)
    return torch.nn.functional.one_hot(strongest, NUM_PITCH_CLASSES).float().numpy()
