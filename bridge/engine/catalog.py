"""The MusicGen checkpoints Segue knows by name, with what a producer needs to choose one."""

from dataclasses import dataclass

MUSICGEN_LICENCE = "CC-BY-NC 4.0 (weights, non-commercial)"
# audiocraft's model_cards/AUDIOGEN_MODEL_CARD.md and LICENSE_weights: CC-BY-NC 4.0, as for MusicGen.
AUDIOGEN_LICENCE = "CC-BY-NC 4.0 (weights, non-commercial)"
# Free for commercial use too below USD 1M annual revenue (stability.ai/news/license-update,
# stability.ai/license); above it an Enterprise licence is needed.
STABILITY_LICENCE = "Stability AI Community License (free below USD 1M yearly revenue)"
# Stability publishes Stable Audio 3 in its own format (stable-audio-3); `segue models download` converts
# it once into a diffusers folder (bridge/models/sa3_download.py). The -base models are undistilled (50-100
# steps with guidance, for fine-tuning): they convert, but Segue's engine samples 8 steps without guidance.
SA3_BASE = "undistilled base for fine-tuning (needs 50-100 steps with guidance, which Segue does not run yet)"


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
    follows_melody: bool = False  # MusicGen-Melody: takes a melody (a chromagram) besides the text
    # "music" (MusicGen) or "sound" (AudioGen: effects and ambiences): the panel's mode picks by it.
    kind: str = "music"


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("facebook/musicgen-small", 2.4, MUSICGEN_LICENCE, 1, "300M: fast, good for loops and sketches (default)"),
    KnownModel("facebook/musicgen-medium", 8.0, MUSICGEN_LICENCE, 1, "1.5B: richer arrangements, slower"),
    KnownModel("facebook/musicgen-large", 13.0, MUSICGEN_LICENCE, 1, "3.3B: best quality, needs a GPU"),
    KnownModel("facebook/musicgen-stereo-small", 2.4, MUSICGEN_LICENCE, 2, "300M stereo: wide loops, fast"),
    KnownModel("facebook/musicgen-stereo-medium", 8.0, MUSICGEN_LICENCE, 2, "1.5B stereo"),
    KnownModel("facebook/musicgen-stereo-large", 13.0, MUSICGEN_LICENCE, 2, "3.3B stereo: best quality, needs a GPU"),
    # Melody models are a different architecture (MusicgenMelody: text + chromagram conditioning,
    # bridge/engine/musicgen/melody.py); sizes are their safetensors shards on the Hub.
    KnownModel("facebook/musicgen-melody", 6.2, MUSICGEN_LICENCE, 1,
               "1.5B, follows a melody or chords you give it (--melody): strings that follow your chord track",
               follows_melody=True),
    KnownModel("facebook/musicgen-melody-large", 10.5, MUSICGEN_LICENCE, 1,
               "3.3B, follows a melody or chords: best quality, needs a GPU", follows_melody=True),
    KnownModel("facebook/musicgen-stereo-melody", 6.3, MUSICGEN_LICENCE, 2,
               "1.5B stereo, follows a melody or chords", follows_melody=True),
    KnownModel("facebook/musicgen-stereo-melody-large", 10.6, MUSICGEN_LICENCE, 2,
               "3.3B stereo, follows a melody or chords: best quality, needs a GPU",
               follows_melody=True),
    # AudioGen: audiocraft pickles on the Hub, converted once at download (bridge/models/audiocraft_convert.py)
    # to safetensors with T5-large's encoder; the converted folder is about 7.5 GB in fp32.
    KnownModel("facebook/audiogen-medium", 7.5, AUDIOGEN_LICENCE, 1,
               "1.5B, 16 kHz sound effects: risers, impacts, whooshes, foley, ambiences", kind="sound"),
    # Stable Audio 3 (44.1 kHz stereo, diffusion: 8 steps for the distilled models). Sizes are estimates
    # from the parameter counts the Hub shows (0.6B small with its T5Gemma encoder, 2B medium), in fp32.
    KnownModel("stabilityai/stable-audio-3-small-music", 2.4, STABILITY_LICENCE, 2,
               "0.6B: BPM-locked music loops and stems, made to run on a CPU (converted at download)"),
    KnownModel("stabilityai/stable-audio-3-small-sfx", 2.4, STABILITY_LICENCE, 2,
               "0.6B: sound effects, risers, foley and one-shots (converted at download)", kind="sound"),
    KnownModel("stabilityai/stable-audio-3-medium", 8.0, STABILITY_LICENCE, 2,
               "2B: full arrangements up to ~6 min (380 s), best quality, wants a GPU (converted at download)"),
    KnownModel("stabilityai/stable-audio-3-small-music-base", 2.4, STABILITY_LICENCE, 2, f"0.6B music: {SA3_BASE}",
               supported=False),
    KnownModel("stabilityai/stable-audio-3-small-sfx-base", 2.4, STABILITY_LICENCE, 2, f"0.6B sound effects: {SA3_BASE}",
               supported=False),
    KnownModel("stabilityai/stable-audio-3-medium-base", 8.0, STABILITY_LICENCE, 2, f"2B: {SA3_BASE}", supported=False),
    KnownModel("stabilityai/stable-audio-open-1.0", 4.8, STABILITY_LICENCE, 2,
               "1.2B, diffusers format: sounds, one-shots and loops up to 47 s, variations; 100 steps, wants a GPU"),
    KnownModel("tiny", 0.004, "MIT (random weights)", 1, "tiny random model built locally: makes noise, for tests/offline", "-"),
    KnownModel("tiny-stereo", 0.004, "MIT (random weights)", 2, "tiny random stereo model built locally: makes noise", "-"),
    KnownModel("tiny-melody", 0.004, "MIT (random weights)", 1, "tiny random melody model built locally: makes noise", "-",
               follows_melody=True),
    KnownModel("tiny-audiogen", 0.004, "MIT (random weights)", 1,
               "tiny random AudioGen (16 kHz) built locally: makes noise, for tests/offline", "-", kind="sound"),
    KnownModel("tiny-stable-audio", 0.002, "MIT (random weights)", 2,
               "tiny random Stable Audio 3 built locally: noise, runs loops, continuation and variations offline", "-"),
    KnownModel("tiny-stable-audio-open", 0.001, "MIT (random weights)", 2,
               "tiny random Stable Audio Open built locally: noise, runs loops and variations offline", "-"),
)

# Built locally (bridge.engine.musicgen.random_models, bridge.engine.stable_audio.random_models) instead of downloaded.
LOCAL_RANDOM_MODELS = ("tiny", "tiny-stereo", "small-random", "tiny-melody", "melody-random", "tiny-audiogen", "audiogen-medium-random",
                      "tiny-stable-audio", "tiny-stable-audio-open")


def find_known_model(model_id: str) -> KnownModel | None:
    return next((model for model in KNOWN_MODELS if model.model_id == model_id), None)


def no_melody_message(model_id: str) -> str:
    """What a producer reads when they give a melody to a model that takes none."""
    return f"{model_id} does not follow a melody: choose a melody model (e.g. facebook/musicgen-melody)"


def known_to_take_no_melody(model_id: str) -> bool:
    """True for a catalogued model without melody input (a folder or an unknown id is known only once loaded)."""
    known = find_known_model(model_id)
    return known is not None and not known.follows_melody
