"""Where models live on this machine, whether each is ready, how much disk it takes, and removal.

Models downloaded by Segue go to `models_dir()/hub/<org>--<name>/`:

    manifest.json        what was downloaded (commit, files, sizes) and its state
    downloads/<commit>/  files being downloaded (`*.part` until complete and checksummed)
    files/               the complete model, moved here only after it was verified to load

A model whose manifest says 'ready' is loaded from `files/`, offline. Models that transformers
downloaded into the Hugging Face cache, local model folders and the built-in random models are
recognised too.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bridge.audio.io import write_text_atomic
from bridge.engine.catalog import KNOWN_MODELS, LOCAL_RANDOM_MODELS, KnownModel, find_known_model
from bridge.engine.random_model_folder import is_random_model
from bridge.errors import ModelError
from bridge.paths import models_dir

MANIFEST = "manifest.json"

# States, as a producer reads them.
READY = "ready"  # downloaded by Segue and verified to load
PARTIAL = "partial"  # a download started and can be resumed
FAILED = "failed"  # downloaded but did not load (see detail)
HF_CACHE = "in Hugging Face cache"  # downloaded by transformers/huggingface_hub earlier
NOT_DOWNLOADED = "not downloaded"
LOCAL_FOLDER = "local folder"
BUILT = "built locally"  # a random test model that exists
BUILT_ON_USE = "built on first use"


@dataclass(frozen=True)
class ModelStatus:
    model_id: str
    state: str
    disk_bytes: int
    path: Path | None = None
    known: KnownModel | None = None
    detail: str = ""

    @property
    def usable_offline(self) -> bool:
        return self.state in (READY, HF_CACHE, LOCAL_FOLDER, BUILT, BUILT_ON_USE)


def store_dir() -> Path:
    return models_dir() / "hub"


def model_dir(model_id: str) -> Path:
    return store_dir() / model_id.replace("/", "--")


def read_manifest(model_id: str) -> dict | None:
    try:
        manifest = json.loads((model_dir(model_id) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(model_id: str, manifest: dict) -> None:
    write_text_atomic(model_dir(model_id) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def installed_model_dir(model_id: str) -> Path | None:
    """The folder to load `model_id` from if Segue downloaded and verified it, else None."""
    manifest = read_manifest(model_id)
    files = model_dir(model_id) / "files"
    return files if manifest and manifest.get("state") == READY and files.is_dir() else None


def model_status(model_id: str) -> ModelStatus:
    known = find_known_model(model_id)
    if model_id in LOCAL_RANDOM_MODELS:
        return _random_model_status(model_id, known)
    local = Path(model_id).expanduser()
    if local.is_dir():
        return ModelStatus(model_id, LOCAL_FOLDER, folder_bytes(local), local, known)
    folder = model_dir(model_id)
    manifest = read_manifest(model_id) or {}
    state = manifest.get("state")
    if state == READY and (folder / "files").is_dir():
        return ModelStatus(model_id, READY, folder_bytes(folder), folder / "files", known)
    if state == FAILED:
        return ModelStatus(model_id, FAILED, folder_bytes(folder), folder, known, manifest.get("error", ""))
    if (folder / "downloads").is_dir():
        total = sum(entry.get("size", 0) for entry in manifest.get("files", []))
        done = folder_bytes(folder / "downloads")
        detail = f"{done / 1e6:.0f} of {total / 1e6:.0f} MB" if total else ""
        return ModelStatus(model_id, PARTIAL, folder_bytes(folder), folder, known, detail)
    hf_bytes, hf_path = _hf_cache_entry(model_id)
    if hf_path is not None:
        return ModelStatus(model_id, HF_CACHE, hf_bytes, hf_path, known)
    return ModelStatus(model_id, NOT_DOWNLOADED, 0, None, known)


def is_downloaded(model_id: str) -> bool:
    """True when `model_id` can be loaded without the network (what the panel's model picker shows)."""
    return model_status(model_id).usable_offline


def all_model_statuses() -> list[ModelStatus]:
    """Every known model, then any other model found in Segue's store."""
    ids = [model.model_id for model in KNOWN_MODELS]
    if store_dir().is_dir():
        for folder in sorted(store_dir().iterdir()):
            manifest = read_manifest(folder.name.replace("--", "/", 1)) or {}
            model_id = manifest.get("model_id") or folder.name.replace("--", "/", 1)
            if model_id not in ids:
                ids.append(model_id)
    return [model_status(model_id) for model_id in ids]


def remove_model(model_id: str) -> int:
    """Delete everything Segue or the Hugging Face cache holds of `model_id`; return bytes freed."""
    if Path(model_id).expanduser().is_dir() and model_id not in LOCAL_RANDOM_MODELS:
        raise ModelError(f"{model_id} is your own folder: Segue does not delete it")
    freed = 0
    folders = [model_dir(model_id)]
    if model_id in LOCAL_RANDOM_MODELS:
        from bridge.engine.musicgen.loading import random_model_dir

        folders = [random_model_dir(model_id)]
    for folder in folders:
        if folder.is_dir():
            freed += folder_bytes(folder)
            shutil.rmtree(folder)
    freed += _remove_hf_cache_entry(model_id)
    return freed


def folder_bytes(path: Path) -> int:
    """Bytes used by the files under `path` (each file once, symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def _random_model_status(model_id: str, known: KnownModel | None) -> ModelStatus:
    from bridge.engine.musicgen.loading import random_model_dir

    folder = random_model_dir(model_id)
    if is_random_model(folder):  # the marker is written last, by every family's builder
        return ModelStatus(model_id, BUILT, folder_bytes(folder), folder, known)
    return ModelStatus(model_id, BUILT_ON_USE, 0, None, known)


def _hf_cache_entry(model_id: str) -> tuple[int, Path | None]:
    repo = _hf_cache_repo(model_id)
    if repo is None:
        return 0, None
    return repo.size_on_disk, Path(repo.repo_path)


def _hf_cache_repo(model_id: str):
    """The Hugging Face cache entry of `model_id` if it holds safetensors weights."""
    if model_id.count("/") != 1:
        return None
    from huggingface_hub import CacheNotFound, scan_cache_dir, try_to_load_from_cache

    weights = ("model.safetensors", "model.safetensors.index.json")  # one file, or shards and their index
    if not any(isinstance(try_to_load_from_cache(model_id, name), str) for name in weights):
        return None
    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return None
    return next((repo for repo in cache.repos if repo.repo_id == model_id and repo.repo_type == "model"), None)


def _remove_hf_cache_entry(model_id: str) -> int:
    repo = _hf_cache_repo(model_id)
    if repo is None:
        return 0
    freed = repo.size_on_disk
    shutil.rmtree(repo.repo_path)
    return freed
