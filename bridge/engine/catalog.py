"""The MusicGen checkpoints Segue knows by name, with what a producer needs to choose one."""

from dataclasses import dataclass

MUSICGEN_LICENCE = "CC-BY-NC 4.0 (weights, non-commercial)"
# Free for commercial use too below USD 1M annual revenue (stability.ai/news/license-update,
# stability.ai/license); above it an Enterprise licence is needed.
STABILITY_LICENCE = "Stability AI Community License (free below USD 1M yearly revenue)"
# Stability publishes Stable Audio 3 in its own format (stable-audio-3 / stable-audio-tools); diffusers
# reads it after its scripts/convert_stable_audio_3_to_diffusers.py. Segue does not convert yet.
SA3_CONVERT = "convert with diffusers' convert_stable_audio_3_to_diffusers.py, then --model FOLDER"


@dataclass(frozen=True)
class KnownModel:
    model_id: str
    size_gb: float
    licence: str
    channels: int
    description: str
    languages: str = "English prompts"
    # False: listed so producers know it exists, but Segue's engine cannot run it (yet).
    supported: bool = True


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("facebook/musicgen-small", 2.4, MUSICGEN_LICENCE, 1, "300M: fast, good for loops and sketches (default)"),
    KnownModel("facebook/musicgen-medium", 8.0, MUSICGEN_LICENCE, 1, "1.5B: richer arrangements, slower"),
    KnownModel("facebook/musicgen-large", 13.0, MUSICGEN_LICENCE, 1, "3.3B: best quality, needs a GPU"),
    KnownModel("facebook/musicgen-stereo-small", 2.4, MUSICGEN_LICENCE, 2, "300M stereo: wide loops, fast"),
    KnownModel("facebook/musicgen-stereo-medium", 8.0, MUSICGEN_LICENCE, 2, "1.5B stereo"),
    KnownModel("facebook/musicgen-stereo-large", 13.0, MUSICGEN_LICENCE, 2, "3.3B stereo: best quality, needs a GPU"),
    # Melody models are a different architecture (MusicgenMelody: text + chromagram conditioning);
    # sizes are estimates from their 1.5B / 3.3B parameter counts, the Hub gives the real ones.
    KnownModel("facebook/musicgen-melody", 6.0, MUSICGEN_LICENCE, 1,
               "1.5B, follows a hummed or played melody: not supported by Segue's engine yet", supported=False),
    KnownModel("facebook/musicgen-melody-large", 13.0, MUSICGEN_LICENCE, 1,
               "3.3B melody-conditioned: not supported by Segue's engine yet", supported=False),
    KnownModel("facebook/musicgen-stereo-melody", 6.0, MUSICGEN_LICENCE, 2,
               "1.5B stereo melody-conditioned: not supported by Segue's engine yet", supported=False),
    KnownModel("facebook/musicgen-stereo-melody-large", 13.0, MUSICGEN_LICENCE, 2,
               "3.3B stereo melody-conditioned: not supported by Segue's engine yet", supported=False),
    # Stable Audio 3 (44.1 kHz stereo, diffusion: 8 steps for the distilled models). Sizes are estimates
    # from the parameter counts the Hub shows (0.6B small with its T5Gemma encoder, 2B medium), in fp32.
    KnownModel("stabilityai/stable-audio-3-small-music", 2.4, STABILITY_LICENCE, 2,
               f"0.6B: BPM-locked music loops and stems, made to run on a CPU; {SA3_CONVERT}", supported=False),
    KnownModel("stabilityai/stable-audio-3-small-sfx", 2.4, STABILITY_LICENCE, 2,
               f"0.6B: sound effects, risers, foley and one-shots; {SA3_CONVERT}", supported=False),
    KnownModel("stabilityai/stable-audio-3-medium", 8.0, STABILITY_LICENCE, 2,
               f"2B: full arrangements up to ~6 min (380 s), best quality, wants a GPU; {SA3_CONVERT}", supported=False),
    KnownModel("stabilityai/stable-audio-open-1.0", 4.8, STABILITY_LICENCE, 2,
               "1.2B, diffusers format: up to 47 s of sounds and loops; not supported by Segue's engine yet",
               supported=False),
    KnownModel("tiny", 0.004, "MIT (random weights)", 1, "tiny random model built locally: makes noise, for tests/offline", "-"),
    KnownModel("tiny-stereo", 0.004, "MIT (random weights)", 2, "tiny random stereo model built locally: makes noise", "-"),
    KnownModel("tiny-stable-audio", 0.002, "MIT (random weights)", 2,
               "tiny random Stable Audio 3 built locally: noise, runs loops, continuation and variations offline", "-"),
)

# Built locally by bridge.engine.musicgen.random_models instead of downloaded.
LOCAL_RANDOM_MODELS = ("tiny", "tiny-stereo", "small-random", "tiny-stable-audio")


def find_known_model(model_id: str) -> KnownModel | None:
    return next((model for model in KNOWN_MODELS if model.model_id == model_id), None)
