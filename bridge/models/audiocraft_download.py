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

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.hf_api import RepoFile

from bridge.errors import ModelError
from bridge.models import download, store
from bridge.models.audiocraft_convert import COMPRESSION_FILE, LM_FILE
from bridge.models.audiocraft_pickles import checkpoint_config, config_value, load_checkpoint_pickle
from bridge.models.conversion import convert_verify_install

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


def is_audiocraft_checkpoint(model_id: str, revision: str = "main") -> bool:
    """True when the repository holds audiocraft's two pickles and no safetensors weights."""
    names = {remote.path for remote in _listing(model_id, revision)[1]}
    return set(AUDIOCRAFT_FILES) <= names and not any(name.endswith(".safetensors") for name in names)


def download_and_convert(
    model_id: str,
    on_progress: Callable[[download.DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    revision: str = "main",
) -> Path:
    commit, listed = _listing(model_id, revision)
    checkpoint_files = [remote for remote in listed if remote.path in AUDIOCRAFT_FILES]
    folder = store.model_dir(model_id)
    downloads = folder / "downloads" / commit
    download._forget_other_commits(folder / "downloads", keep=commit)
    manifest = {"model_id": model_id, "endpoint": download.hub_endpoint(), "commit": commit, "state": "downloading",
                "format": "audiocraft", "files": [{"path": f.path, "size": f.size} for f in checkpoint_files]}
    store.write_manifest(model_id, manifest)
    tracker = download._Tracker(model_id, checkpoint_files, downloads / "checkpoint", on_progress)
    _fetch_all(model_id, commit, checkpoint_files, downloads / "checkpoint", tracker, cancel, 0)

    text_encoder_repo = _text_encoder_repo(downloads / "checkpoint" / LM_FILE)
    t5_commit, t5_listed = _listing(text_encoder_repo, "main")
    t5_files = [remote for remote in t5_listed if remote.path in TEXT_ENCODER_FILES]
    if not any(remote.path == "model.safetensors" for remote in t5_files):
        raise ModelError(f"{text_encoder_repo} (AudioGen's text encoder) has no safetensors weights")
    _extend(tracker, t5_files, downloads / "t5")
    manifest["text_encoder"] = {"repo": text_encoder_repo, "commit": t5_commit}
    manifest["files"] += [{"path": f"{text_encoder_repo}/{f.path}", "size": f.size} for f in t5_files]
    store.write_manifest(model_id, manifest)
    _fetch_all(text_encoder_repo, t5_commit, t5_files, downloads / "t5", tracker, cancel, len(checkpoint_files))

    return convert_verify_install(model_id, manifest, tracker, "bridge.models.audiocraft_convert:convert_audiogen",
                                  (downloads / "checkpoint", downloads / "t5"), "the AudioGen checkpoint")


def _listing(repo_id: str, revision: str) -> tuple[str, list[download.RemoteFile]]:
    api = HfApi(endpoint=download.hub_endpoint())
    with download._hub_errors(repo_id):
        commit = api.model_info(repo_id, revision=revision).sha
        entries = [entry for entry in api.list_repo_tree(repo_id, revision=commit, recursive=True)
                   if isinstance(entry, RepoFile)]
    files = [download.RemoteFile(e.path, e.size, e.lfs.sha256 if e.lfs else None, e.blob_id) for e in entries]
    return commit, sorted(files, key=lambda f: (f.size, f.path))


def _fetch_all(repo_id, commit, files, into: Path, tracker, cancel, files_before: int) -> None:
    for index, remote in enumerate(files):
        target = into / remote.path
        if not target.is_file():
            url = hf_hub_url(repo_id, remote.path, revision=commit, endpoint=download.hub_endpoint())
            download._fetch(url, target.with_name(target.name + ".part"), remote, tracker, cancel)
        tracker.file_done(files_before + index + 1, remote.path)


def _extend(tracker, files: list[download.RemoteFile], into: Path) -> None:
    """Count the text encoder's files in the same progress (known only once the LM's config is read)."""
    tracker.files = [*tracker.files, *files]
    tracker.total += sum(f.size for f in files)
    tracker.done += sum(download._size_on_disk(into / f.path) for f in files)


def _text_encoder_repo(lm_checkpoint: Path) -> str:
    config = checkpoint_config(load_checkpoint_pickle(lm_checkpoint))
    name = str(config_value(config, "conditioners.description.t5.name", DEFAULT_TEXT_ENCODER))
    repo = TEXT_ENCODER_REPOS.get(name, name if name.startswith("google/flan-t5-") else None)
    if repo is None:
        raise ModelError(f"this AudioGen checkpoint conditions on {name!r}, a text encoder Segue does not know")
    return repo
