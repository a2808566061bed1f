"""Download an audiocraft-format model (AudioGen) and convert it once into Segue's model store.

`facebook/audiogen-medium` ships audiocraft's pickles, not safetensors: `state_dict.bin` (the LM
and its T5 projection) and `compression_state_dict.bin` (the 16 kHz EnCodec). The T5 encoder
itself is not in them, so its safetensors come from the T5 repository the checkpoint's config
names (`conditioners.description.t5.name`: `t5-large` for AudioGen). All files are fetched with
the same resumable, checksummed transfer as any model (bridge/models/download.py), converted in a
child process (a multi-GB job the panel's process should not hold, which an out-of-memory kill
must not take down), verified to load like any download, and installed as `files/`. The pickles
and the raw T5 are then deleted: the converted folder is all Segue loads.
"""

import threading
from collections.abc import Callable
from pathlib import Path

from bridge.errors import ModelError
from bridge.models import download
from bridge.models.audiocraft_convert import COMPRESSION_FILE, LM_FILE
from bridge.models.audiocraft_pickles import checkpoint_config, config_value, load_checkpoint_pickle
from bridge.models.conversion import (
    add_text_encoder,
    convert_verify_install,
    fetch_all,
    start_download,
)

AUDIOCRAFT_FILES = (LM_FILE, COMPRESSION_FILE)
DEFAULT_TEXT_ENCODER = "t5-large"  # audiocraft config/conditioner/text2sound.yaml
# audiocraft's T5Conditioner.MODELS names -> Hub repositories with safetensors weights.
TEXT_ENCODER_REPOS = {
    "t5-small": "google-t5/t5-small",
    "t5-base": "google-t5/t5-base",
    "t5-large": "google-t5/t5-large",
    "t5-3b": "google-t5/t5-3b",
    "t5-11b": "google-t5/t5-11b",
}
TEXT_ENCODER_FILES = ("config.json", "model.safetensors", "spiece.model", "tokenizer.json", "tokenizer_config.json",
                      "special_tokens_map.json")


def is_audiocraft_checkpoint(names: set[str]) -> bool:
    """True when the repository (its file `names`) holds audiocraft's two pickles and no safetensors weights."""
    return set(AUDIOCRAFT_FILES) <= names and not any(name.endswith(".safetensors") for name in names)


def download_and_convert(
    model_id: str,
    commit: str,
    listed: list[download.RemoteFile],
    on_progress: Callable[[download.DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch `listed` (download.list_repo's files of `model_id` at `commit`), convert and install."""
    checkpoint_files = [remote for remote in listed if remote.path in AUDIOCRAFT_FILES]
    manifest, tracker, downloads = start_download(model_id, commit, checkpoint_files, "audiocraft", on_progress)
    fetch_all(model_id, commit, checkpoint_files, downloads / "checkpoint", tracker, cancel, 0)

    text_encoder_repo = _text_encoder_repo(downloads / "checkpoint" / LM_FILE)
    t5_commit, t5_listed = download.list_repo(text_encoder_repo, "main")
    t5_files = [remote for remote in t5_listed if remote.path in TEXT_ENCODER_FILES]
    if not any(remote.path == "model.safetensors" for remote in t5_files):
        raise ModelError(f"{text_encoder_repo} (AudioGen's text encoder) has no safetensors weights")
    add_text_encoder(manifest, tracker, {"repo": text_encoder_repo, "commit": t5_commit}, t5_files, downloads / "t5")
    fetch_all(text_encoder_repo, t5_commit, t5_files, downloads / "t5", tracker, cancel, len(checkpoint_files))

    return convert_verify_install(model_id, manifest, tracker, "bridge.models.audiocraft_convert:convert_audiogen",
                                  (downloads / "checkpoint", downloads / "t5"), "the AudioGen checkpoint")


def _text_encoder_repo(lm_checkpoint: Path) -> str:
    config = checkpoint_config(load_checkpoint_pickle(lm_checkpoint))
    name = str(config_value(config, "conditioners.description.t5.name", DEFAULT_TEXT_ENCODER))
    repo = TEXT_ENCODER_REPOS.get(name, name if name.startswith("google/flan-t5-") else None)
    if repo is None:
        raise ModelError(f"this AudioGen checkpoint conditions on {name!r}, a text encoder Segue does not know")
    return repo
