"""Load a MusicGen checkpoint (Hugging Face id, local directory or a built-in random model).

safetensors only, never remote code. fp16 on CUDA; EnCodec stays fp32 (and on the CPU under MPS,
where its convolutions are slow or unsupported).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    EncodecFeatureExtractor,
    MusicgenForConditionalGeneration,
    MusicgenMelodyForConditionalGeneration,
    MusicgenProcessor,
)

from bridge import paths
from bridge.engine.catalog import LOCAL_RANDOM_MODELS, find_known_model
from bridge.engine.musicgen.audiogen import Windows, windows_for
from bridge.engine.musicgen.random_models import save_random_musicgen
from bridge.engine.random_model_folder import is_random_model
from bridge.errors import InvalidParameterError, ModelError
from bridge.models.store import installed_model_dir

DEVICES = ("auto", "cpu", "cuda", "mps")
MELODY_MODEL_TYPE = "musicgen_melody"


@dataclass
class LoadedModel:
    model_id: str
    model: MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration
    processor: MusicgenProcessor
    device: torch.device  # where the text encoder and decoder run
    dtype: torch.dtype
    codec_device: torch.device  # where EnCodec runs (fp32)
    is_random: bool
    windows: Windows | None = None  # AudioGen's 10 s windows; None: MusicGen's (generator.WINDOW_SECONDS)

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        return int(self.model.config.audio_encoder.frame_rate)

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate // self.frame_rate

    @property
    def audio_channels(self) -> int:
        return int(self.model.config.decoder.audio_channels)

    @property
    def num_codebooks(self) -> int:
        return int(self.model.decoder.num_codebooks)

    @property
    def takes_melody(self) -> bool:
        """A MusicGen-Melody checkpoint: conditioned on a chromagram prefix as well as text."""
        return self.model.config.model_type == MELODY_MODEL_TYPE


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise InvalidParameterError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameterError("CUDA was asked for but no CUDA GPU is available")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError("Apple MPS was asked for but is not available")
    return torch.device(device)


def random_model_dir(architecture: str) -> Path:
    return paths.models_dir() / f"segue-{architecture}"


def resolve_checkpoint(model_id: str) -> str:
    """A built-in random model (built on first use), a local directory, or a Hugging Face id."""
    if model_id in LOCAL_RANDOM_MODELS:
        directory = random_model_dir(model_id)
        if not (directory / "model.safetensors").is_file():
            save_random_musicgen(model_id, directory)
        return str(directory)
    local = Path(model_id).expanduser()
    if local.is_dir():
        return str(local)
    downloaded = installed_model_dir(model_id)  # fetched with `segue models download`: loads offline
    if downloaded is not None:
        return str(downloaded)
    if model_id.count("/") != 1 or local.exists() or model_id.startswith((".", "/", "~")):
        raise ModelError(f"unknown model {model_id!r}: give a Hugging Face id (org/name) or a model folder")
    known = find_known_model(model_id)
    if known is not None and known.kind == "sound":  # audiocraft pickles: usable only once converted
        raise ModelError(f"{model_id} is converted for Segue when it is downloaded: run `segue models download "
                         f"{model_id}` (or pick it in the panel) first")
    return model_id


def load_model(model_id: str, device: str = "auto") -> LoadedModel:
    """Load and place a model; raise ModelError with a producer-readable reason on failure."""
    target = resolve_device(device)
    checkpoint = resolve_checkpoint(model_id)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.logging.set_verbosity_error()
    try:
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=False)
        melody = config.model_type == MELODY_MODEL_TYPE
        model_class = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
        model = model_class.from_pretrained(checkpoint, use_safetensors=True, trust_remote_code=False)
        processor = _text_processor(checkpoint, config) if melody else AutoProcessor.from_pretrained(checkpoint, trust_remote_code=False)
    except OSError as error:
        raise ModelError(_describe_load_failure(model_id, error)) from None
    except (ValueError, KeyError, RuntimeError) as error:
        raise ModelError(f"{model_id} is not a loadable MusicGen checkpoint: {_first_line(error)}") from None

    if melody:  # a 235-frame chroma and the text precede up to 30 s of codes: room for a long prompt
        positions = model.decoder.model.decoder.embed_positions
        positions.make_weights(2 * positions.num_positions, positions.embedding_dim)
    dtype = torch.float16 if target.type in ("cuda", "mps") else torch.float32
    model.eval()
    model.text_encoder.to(target, dtype)
    model.decoder.to(target, dtype)
    if hasattr(model, "enc_to_dec_proj"):
        model.enc_to_dec_proj.to(target, dtype)
    codec_device = torch.device("cpu") if target.type == "mps" else target
    model.audio_encoder.to(codec_device, torch.float32)
    _fold_weight_norm(model.audio_encoder)
    return LoadedModel(
        model_id=model_id,
        model=model,
        processor=processor,
        device=target,
        dtype=dtype,
        codec_device=codec_device,
        is_random=is_random_model(Path(checkpoint)),
        windows=windows_for(checkpoint),
    )


def _text_processor(checkpoint: str, config: transformers.PretrainedConfig) -> MusicgenProcessor:
    """The tokenizer of a melody checkpoint, in a MusicgenProcessor like the other models'.

    Its own processor's chroma extractor needs torchaudio, which does not load with Segue's torch;
    Segue computes the chromagram itself (bridge/engine/musicgen/chroma.py).
    """
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=False)
    codec = config.audio_encoder
    features = EncodecFeatureExtractor(feature_size=config.decoder.audio_channels, sampling_rate=codec.sampling_rate)
    return MusicgenProcessor(feature_extractor=features, tokenizer=tokenizer)


def _fold_weight_norm(module: torch.nn.Module) -> None:
    """Replace weight-norm parametrisations by the weights they compute (same values).

    A parametrised weight is recomputed from its direction and norm on every call: EnCodec's ~70
    convolutions did that for every streamed chunk.
    """
    for submodule in list(module.modules()):
        if torch.nn.utils.parametrize.is_parametrized(submodule, "weight"):
            torch.nn.utils.parametrize.remove_parametrizations(submodule, "weight", leave_parametrized=True)


def _describe_load_failure(model_id: str, error: OSError) -> str:
    text = str(error)
    offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or "offline" in text.lower()
    if "safetensors" in text.lower() and "not" in text.lower():
        return f"{model_id} has no safetensors weights; Segue loads safetensors only"
    if offline or "connect" in text.lower() or "resolve" in text.lower() or "network" in text.lower():
        return (
            f"cannot download {model_id}: no network (or HF_HUB_OFFLINE is set) and it is not in the cache; "
            f"connect and run `segue models download {model_id}`, or pass a local model folder with --model"
        )
    if "not a valid model identifier" in text or "Repository Not Found" in text or "404" in text:
        return f"unknown model {model_id!r}: no such Hugging Face repository"
    return f"cannot load {model_id}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
