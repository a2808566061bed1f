"""Measure the audio round trip from Segue's output to its input, to the sample, and remember it.

A short noise burst (its autocorrelation is a single sharp peak) is played into the output device
while the same full-duplex stream records the input; the producer's loopback routing (or a cable)
joins the two. In a duplex stream output frame k and input frame k pass through the same callback,
so where the burst lands in the recording, minus where it was in the output, is the round trip in
frames, free of any timing estimate. The DAW's sound reaches the recorder along the same kind of
path, so bar snapshots are shifted by it (Recorder.latency_frames).
"""

from dataclasses import dataclass

import numpy as np

from bridge.audio.devices import AudioDevice, chosen_device, portaudio
from bridge.errors import CalibrationError
from bridge.settings import load_settings, update_settings

CLICK_SECONDS = 0.02
CLICK_LEVEL = 0.5
LEAD_SECONDS = 0.05  # silence before the click, so it never sits in the stream's first block
LISTEN_SECONDS = 1.0  # the longest round trip looked for
ATTEMPTS = 3
# The correlation peak must stand this many times above anything else in the recording.
MIN_CLARITY = 4.0


@dataclass(frozen=True)
class Calibration:
    round_trip_frames: int
    sample_rate: int
    attempts: tuple[int, ...]

    @property
    def round_trip_seconds(self) -> float:
        return self.round_trip_frames / self.sample_rate


def click(sample_rate: int) -> np.ndarray:
    """The calibration burst: CLICK_SECONDS of seeded white noise, mono float32 (frames, 1)."""
    frames = round(CLICK_SECONDS * sample_rate)
    noise = np.random.default_rng(0x5E6E).uniform(-CLICK_LEVEL, CLICK_LEVEL, frames)
    return noise.astype(np.float32)[:, None]


def locate(recording: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Where mono `reference` (frames, 1) starts in `recording` (frames, channels), and how clearly:
    the correlation peak over the largest value outside the reference's own width around it."""
    mono = recording.mean(axis=1)
    import scipy.signal  # ~0.9 s to import; the CLI's parser loads this module

    correlation = np.abs(scipy.signal.correlate(mono, reference[:, 0], mode="valid", method="fft"))
    if not correlation.size or not correlation.max() > 0:
        return 0, 0.0
    peak = int(np.argmax(correlation))
    width = reference.shape[0]
    rest = np.concatenate([correlation[: max(0, peak - width)], correlation[peak + width :]])
    runner_up = float(rest.max()) if rest.size else 0.0
    return peak, float(correlation[peak]) / runner_up if runner_up > 0 else float("inf")


def measure_round_trip(
    input_device: AudioDevice, output_device: AudioDevice, attempts: int = ATTEMPTS
) -> Calibration:
    """Play the click `attempts` times, each in a fresh duplex stream at the input's rate, and
    return the round trip in input frames.

    Raises CalibrationError when the devices cannot run together at one rate, when the click is
    not heard clearly (routing missing, muted, noisy), or when attempts disagree.
    """
    sd = portaudio()
    rate = input_device.default_sample_rate
    burst = click(rate)
    lead = np.zeros((round(LEAD_SECONDS * rate), 1), np.float32)
    tail = np.zeros((round(LISTEN_SECONDS * rate) + burst.shape[0], 1), np.float32)
    signal = np.concatenate([lead, burst, tail])
    results = []
    for _ in range(attempts):
        try:
            recording = sd.playrec(
                signal, rate, channels=1, dtype="float32", device=(input_device.index, output_device.index),
                blocking=True,
            )
        except sd.PortAudioError as error:
            raise CalibrationError(
                f"cannot play into {output_device.label} while recording {input_device.label} at {rate} Hz "
                f"({error}); set both devices to the same sample rate"
            ) from None
        found, clarity = locate(recording, burst)
        if clarity < MIN_CLARITY:
            raise CalibrationError(
                f"the click played into {output_device.label} was not heard on {input_device.label}; "
                "route that output into that input (loopback) and try again"
            )
        results.append(found - lead.shape[0])
    if len(set(results)) > 1:
        raise CalibrationError(
            f"the round trip changed between attempts ({', '.join(map(str, results))} frames); "
            "close other audio programs and calibrate again"
        )
    return Calibration(results[0], rate, tuple(results))


def round_trip_key(input_device: AudioDevice, output_device: AudioDevice, sample_rate: int) -> str:
    return f"{output_device.label} -> {input_device.label} @ {sample_rate} Hz"


def save_round_trip(input_device: AudioDevice, output_device: AudioDevice, calibration: Calibration) -> None:
    key = round_trip_key(input_device, output_device, calibration.sample_rate)

    def change(settings) -> None:
        settings.audio.round_trip_frames[key] = calibration.round_trip_frames

    update_settings(change)


def saved_round_trip(input_device: AudioDevice, output_device: AudioDevice, sample_rate: int) -> int | None:
    """The stored round trip in input frames for this pair of devices at this rate, or None."""
    return load_settings().audio.round_trip_frames.get(round_trip_key(input_device, output_device, sample_rate))


def calibrate(input_query: str | int | None = None, output_query: str | int | None = None) -> Calibration:
    """Measure the round trip between the chosen devices (remembered ones by default) and store it."""
    input_device, output_device = chosen_device("input", input_query), chosen_device("output", output_query)
    calibration = measure_round_trip(input_device, output_device)
    save_round_trip(input_device, output_device, calibration)
    return calibration
