"""Download a Stable Audio 3 model in Stability's format and convert it once into Segue's model store.

Stability's repositories (`stabilityai/stable-audio-3-small-music`, `-small-sfx`, `-medium` and their
`-base` variants; stable-audio-3 `model_configs.py`) hold `model_config.json`, one
`model.safetensors` (DiT, SAME autoencoder, conditioners) and T5Gemma in the subfolder the prompt
conditioner names (`repo_id` + `subfolder`, else Google's `google/t5gemma-b-b-ul2`). The config is
fetched and checked first, so a repository Segue cannot convert is refused before gigabytes move;
then the checkpoint and T5Gemma's safetensors and tokenizer are fetched with the same resumable,
checksummed transfer as any model, converted (bridge/models/sa3_convert.py) and installed as
`files/` (bridge/models/conversion.py).
"""

import fnmatch
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from bridge.errors import ModelError
from bridge.models import download, store
from bridge.models.conversion import (
    add_text_encoder,
    convert_verify_install,
    fetch_all,
    start_download,
)
from bridge.models.sa3_config import CHECKPOINT, MODEL_CONFIG, read_model_config, text_encoder_source

DIFFUSERS_INDEX = "model_index.json"


def is_stability_checkpoint(names: set[str]) -> bool:
    """True for a stable-audio-3 repository (its file `names`): its config and weights, and no diffusers layout."""
    return {MODEL_CONFIG, CHECKPOINT} <= names and DIFFUSERS_INDEX not in names


def download_and_convert(
    model_id: str,
    commit: str,
    listed: list[download.RemoteFile],
    on_progress: Callable[[download.DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch `listed` (download.list_repo's files of `model_id` at `commit`), convert and install."""
    by_name = {remote.path: remote for remote in listed}
    checkpoint_files = [by_name[MODEL_CONFIG], by_name[CHECKPOINT]]  # the config first: refused early
    manifest, tracker, downloads = start_download(model_id, commit, checkpoint_files, "stable-audio-3", on_progress)
    folder = store.model_dir(model_id)
    fetch_all(model_id, commit, checkpoint_files[:1], downloads / "checkpoint", tracker, cancel, 0)
    try:
        config = read_model_config(downloads / "checkpoint" / MODEL_CONFIG)
    except ModelError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelError(f"{model_id}: {error}") from None

    encoder_repo, subfolder = text_encoder_source(config, model_id)
    if encoder_repo == model_id:
        encoder_commit, encoder_listed = commit, listed
    else:
        encoder_commit, encoder_listed = download.list_repo(encoder_repo, "main")
    encoder_files = _text_encoder_files(encoder_listed, subfolder)
    if not any(remote.path.endswith(".safetensors") for remote in encoder_files):
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelError(f"{encoder_repo}/{subfolder} (Stable Audio 3's text encoder) has no safetensors weights")
    source = {"repo": encoder_repo, "subfolder": subfolder, "commit": encoder_commit}
    add_text_encoder(manifest, tracker, source, encoder_files, downloads / "text_encoder")
    fetch_all(model_id, commit, checkpoint_files[1:], downloads / "checkpoint", tracker, cancel, 1)
    fetch_all(encoder_repo, encoder_commit, encoder_files, downloads / "text_encoder", tracker, cancel,
               len(checkpoint_files))

    return convert_verify_install(model_id, manifest, tracker, "bridge.models.sa3_convert:convert_stable_audio_3",
                                  (downloads / "checkpoint", downloads / "text_encoder" / subfolder),
                                  f"the Stable Audio 3 checkpoint {model_id}")


def _text_encoder_files(listed: list[download.RemoteFile], subfolder: str) -> list[download.RemoteFile]:
    """Config, tokenizer and safetensors weights directly in `subfolder` (the whole repo when empty)."""
    prefix = f"{subfolder}/" if subfolder else ""
    return [remote for remote in listed
            if remote.path.startswith(prefix) and "/" not in remote.path[len(prefix):]
            and any(fnmatch.fnmatch(remote.path, pattern) for pattern in download.WANTED_FILES)]
