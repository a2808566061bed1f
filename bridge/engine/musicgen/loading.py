"""Load a MusicGen checkpoint (Hugging Face id, local directory or a built-in random model).

Into Segue's own modules (bridge/engine/musicgen/modules), read straight from the checkpoint's files:
config.json, generation_config.json, tokenizer.json and the safetensors weights. transformers is not
imported: its MusicGen import alone cost ~2.3 s of a 5 s CLI job on a 2-core machine.
bridge/engine/musicgen/reference.py loads the same checkpoint through transformers (tests, benchmarks).

safetensors only, never remote code. fp16 on CUDA; EnCodec stays fp32 (and on the CPU under MPS,
where its convolutions are slow or unsupported).
"""

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from bridge import paths
from bridge.engine.catalog import LOCAL_RANDOM_MODELS, find_known_model
from bridge.engine.musicgen.audiogen import Windows, windows_for
from bridge.engine.musicgen.modules.encodec import encodec_state
from bridge.engine.musicgen.modules.musicgen import (
    MELODY_MODEL_TYPE,
    MusicgenModules,
    generation_config,
    musicgen_config,
)
from bridge.engine.musicgen.modules.t5 import t5_state
from bridge.engine.musicgen.modules.tokenizer import TextTokenizer
from bridge.engine.random_model_folder import is_random_model
from bridge.errors import InvalidParameterError, ModelError
from bridge.models.store import installed_model_dir

DEVICES = ("auto", "cpu", "cuda", "mps")
log = logging.getLogger(__name__)
TIED_T5_EMBEDDING = "text_encoder.encoder.embed_tokens.weight"  # a copy of `shared`, when saved


Tokenizer = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]  # prompts -> (input ids, attention mask)


@dataclass
class LoadedModel:
    model_id: str
    # Segue's MusicgenModules; in tests and benchmarks also transformers' model (reference.py): both
    # have the same module tree and config attributes
    model: torch.nn.Module
    tokenizer: Tokenizer
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
            from bridge.engine.musicgen.random_models import (
                save_random_musicgen,  # transformers: first use only
            )

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
    try:
        folder = checkpoint_folder(checkpoint)
        config = _read_json(folder / "config.json")
        model = build_modules(config, _read_json(folder / "generation_config.json", {}), read_weights(folder))
        tokenizer = TextTokenizer.from_folder(folder)
    except OSError as error:
        raise ModelError(_describe_load_failure(model_id, error)) from None
    except (ValueError, KeyError, TypeError, RuntimeError, SafetensorError, ModelError) as error:
        raise ModelError(f"{model_id} is not a loadable MusicGen checkpoint: {_first_line(error)}") from None
    return place(model_id, model, tokenizer, target, is_random_model(folder), windows_for(folder))


def place(
    model_id: str, model: torch.nn.Module, tokenizer: Tokenizer, target: torch.device, is_random: bool,
    windows: Windows | None = None,
) -> LoadedModel:
    """Put a model's parts on their devices in their dtypes: a LoadedModel ready to run."""
    if model.config.model_type == MELODY_MODEL_TYPE:  # a 235-frame chroma and the text precede up to 30 s of codes
        positions = model.decoder.model.decoder.embed_positions
        positions.make_weights(2 * positions.num_positions, positions.embedding_dim)
    dtype = torch.float16 if target.type in ("cuda", "mps") else torch.float32
    model.eval()
    model.text_encoder.to(target, dtype)
    model.decoder.to(target, dtype)
    for projection in ("enc_to_dec_proj", "audio_enc_to_dec_proj"):
        if hasattr(model, projection):
            getattr(model, projection).to(target, dtype)
    codec_device = torch.device("cpu") if target.type == "mps" else target
    model.audio_encoder.to(codec_device, torch.float32)
    return LoadedModel(model_id, model, tokenizer, target, dtype, codec_device, is_random, windows)


def checkpoint_folder(checkpoint: str) -> Path:
    """A local folder as it is; a Hugging Face id through the hub's cache (downloaded unless offline)."""
    local = Path(checkpoint)
    if local.is_dir():
        return local
    # Only for ids that are not installed: importing the hub takes time.
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, logging

    logging.set_verbosity_error()
    disable_progress_bars()
    return Path(snapshot_download(checkpoint, allow_patterns=["*.json", "*.safetensors"]))


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint: model.safetensors, or the shards its index lists."""
    single = folder / "model.safetensors"
    if single.is_file():
        return load_file(single)
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        raise ValueError("it has no safetensors weights (Segue loads safetensors only)")
    weights: dict[str, torch.Tensor] = {}
    for shard in sorted(set(_read_json(index)["weight_map"].values())):
        weights.update(load_file(folder / shard))
    return weights


def build_modules(config: dict, generation: dict, weights: dict[str, torch.Tensor]) -> MusicgenModules:
    """Segue's modules for a MusicGen config.json, holding `weights` (the checkpoint's state dict).

    Built on the meta device and then handed the checkpoint's tensors, so nothing is initialised
    only to be overwritten. A weight the modules need and the checkpoint lacks is a ValueError naming
    it; a weight they do not use is left out with a log line, as transformers does (e.g. a stored
    copy of the sinusoidal position table, which is computed, or the tied T5 embedding).
    """
    parsed = musicgen_config(config)
    with torch.device("meta"):
        model = MusicgenModules(parsed, generation_config(generation, parsed))
    expected = set(model.state_dict())
    text_part = {name: value for name, value in weights.items() if name.startswith("text_encoder.")}
    codec_part = {name: value for name, value in weights.items() if name.startswith("audio_encoder.")}
    state = {name: value for name, value in weights.items() if name not in text_part and name not in codec_part}
    used_text = {name.removeprefix("text_encoder."): value for name, value in text_part.items()
                 if name in expected or name == TIED_T5_EMBEDDING}
    state.update({f"text_encoder.{name}": value for name, value in t5_state(used_text, parsed.text_encoder).items()})
    codec = encodec_state({name.removeprefix("audio_encoder."): value for name, value in codec_part.items()})
    state.update({f"audio_encoder.{name}": value for name, value in codec.items()})
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"its weights lack {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    unused = sorted(set(state) - expected) + sorted(set(text_part) - expected - {TIED_T5_EMBEDDING})
    if unused:
        log.info("left out %d weights Segue does not use: %s", len(unused), ", ".join(unused[:5]))
    model.load_state_dict({name: state[name] for name in expected}, strict=True, assign=True)
    return model


def _read_json(path: Path, default: dict | None = None) -> dict:
    if not path.is_file():
        if default is None:
            raise ValueError(f"it has no {path.name}")
        return default
    with open(path, encoding="utf-8") as file:
        return json.load(file)


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
