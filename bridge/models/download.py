"""Download a model from the Hugging Face Hub with real byte progress, resume and cancel.

huggingface_hub lists the files (config, tokenizer, safetensors weights: never pickles) and their
checksums; each file is then fetched over HTTP into a `.part` file that a later call resumes with
a Range request, so an interrupted multi-GB download is never started over. A dropped connection
is resumed on the spot a few times. Every file is checked against the Hub's checksum, the model
is loaded once in a separate process, and only then does it become 'ready' (see store.py).

`HF_ENDPOINT` (another hub or a mirror) and `HF_HUB_OFFLINE` are read at call time.
"""

import fnmatch
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client (get_session): its exceptions are what a dropped link raises
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from bridge.engine.catalog import LOCAL_RANDOM_MODELS, find_known_model
from bridge.errors import CancelledError, ModelError
from bridge.models import store
from bridge.models.verify import verify_model_loads

# Configuration, tokenizer and safetensors weights: everything from_pretrained needs, no pickles.
WANTED_FILES = ("*.json", "*.safetensors", "*.model")
CHUNK_BYTES = 1 << 20  # for checksums
REPORT_BYTES = 1 << 20
RESUME_ATTEMPTS = 4
RETRY_WAIT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of the whole model (all files) on disk so far, including what an earlier run fetched."""

    model_id: str
    bytes_done: int
    bytes_total: int
    file_name: str
    files_done: int
    files_total: int
    stage: str = "downloading"  # "downloading", then "verifying" ("converting" before it for AudioGen)

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 0.0


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # large (LFS) files
    git_oid: str  # git blob id: sha1 over "blob <size>\0" + content


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return constants.is_offline_mode() or flag in ("1", "true", "yes", "on")


def download_model(
    model_id: str,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    revision: str = "main",
) -> Path:
    """Download (or finish downloading) `model_id`, verify it loads, and return its folder.

    Raises ModelError (offline, unknown model, network, bad checksum, does not load) or
    CancelledError when `cancel` is set; either way the bytes fetched so far are kept for the next call.
    """
    _check_downloadable(model_id)
    existing = store.installed_model_dir(model_id)
    if existing is not None:
        return existing
    if hub_offline():
        raise ModelError(
            f"cannot download {model_id}: HF_HUB_OFFLINE is set. Unset it to download, or pass a model "
            "folder you already have with --model PATH"
        )
    from bridge.models import audiocraft_download, sa3_download  # they build on this module

    commit, listed = list_repo(model_id, revision)  # once: each format below is told by its file names
    names = {remote.path for remote in listed}
    if audiocraft_download.is_audiocraft_checkpoint(names):  # AudioGen: pickles, converted once
        return audiocraft_download.download_and_convert(model_id, commit, listed, on_progress, cancel)
    if sa3_download.is_stability_checkpoint(names):  # Stable Audio 3: Stability's format, converted once
        return sa3_download.download_and_convert(model_id, commit, listed, on_progress, cancel)
    files = wanted_files(model_id, listed)
    folder = store.model_dir(model_id)
    downloads = folder / "downloads" / commit
    _forget_other_commits(folder / "downloads", keep=commit)
    store.write_manifest(model_id, {
        "model_id": model_id, "endpoint": hub_endpoint(), "commit": commit, "state": "downloading",
        "files": [{"path": f.path, "size": f.size} for f in files],
    })
    tracker = _Tracker(model_id, files, downloads, on_progress)
    for index, remote in enumerate(files):
        target = downloads / remote.path
        if not target.is_file():
            url = hf_hub_url(model_id, remote.path, revision=commit, endpoint=hub_endpoint())
            _fetch(url, target.with_name(target.name + ".part"), remote, tracker, cancel)
        tracker.file_done(index + 1, remote.path)
    tracker.report("verifying", "")
    try:
        verify_model_loads(downloads)
    except ModelError as error:
        store.write_manifest(model_id, {**(store.read_manifest(model_id) or {}), "state": store.FAILED,
                                        "error": str(error)})
        raise
    installed = folder / "files"
    if installed.exists():
        shutil.rmtree(installed)
    os.replace(downloads, installed)
    shutil.rmtree(folder / "downloads", ignore_errors=True)
    store.write_manifest(model_id, {**(store.read_manifest(model_id) or {}), "state": store.READY,
                                    "verified_at": time.time()})
    return installed


def list_repo(repo_id: str, revision: str = "main") -> tuple[str, list[RemoteFile]]:
    """The commit that `revision` points to and every file of the repository at it, small files first."""
    api = HfApi(endpoint=hub_endpoint())
    with _hub_errors(repo_id):
        commit = api.model_info(repo_id, revision=revision).sha
        entries = [entry for entry in api.list_repo_tree(repo_id, revision=commit, recursive=True)
                   if isinstance(entry, RepoFile)]
    files = [RemoteFile(entry.path, entry.size, entry.lfs.sha256 if entry.lfs else None, entry.blob_id)
             for entry in entries]
    return commit, sorted(files, key=lambda f: (f.size, f.path))  # small files first: errors show early


def wanted_files(model_id: str, listed: list[RemoteFile]) -> list[RemoteFile]:
    """The files Segue needs of a repository in a loadable format (list_repo's listing)."""
    files = [f for f in listed if any(fnmatch.fnmatch(f.path, pattern) for pattern in WANTED_FILES)]
    if any(f.path == "model_index.json" for f in files):
        # A diffusers repository: its components are in folders. Files beside model_index.json are another
        # library's copy (stable-audio-open-1.0 also ships stable-audio-tools' 4.9 GB model.safetensors).
        files = [f for f in files if "/" in f.path or f.path == "model_index.json"]
    if not any(f.path.endswith(".safetensors") for f in files):
        raise ModelError(f"{model_id} has no safetensors weights; Segue loads safetensors only")
    return files


def _check_downloadable(model_id: str) -> None:
    if model_id in LOCAL_RANDOM_MODELS:
        raise ModelError(f"{model_id} is built locally on first use, there is nothing to download")
    if Path(model_id).expanduser().is_dir():
        raise ModelError(f"{model_id} is a local folder, there is nothing to download")
    if model_id.count("/") != 1 or model_id.startswith((".", "/", "~")):
        raise ModelError(f"unknown model {model_id!r}: give a Hugging Face id (org/name)")
    known = find_known_model(model_id)
    if known is not None and not known.supported:
        raise ModelError(f"{model_id}: {known.description}")


class _Tracker:
    """Counts bytes on disk across files; reports every REPORT_BYTES and at the end of each file."""

    def __init__(self, model_id, files, downloads: Path, on_progress) -> None:
        self.model_id = model_id
        self.files = files
        self.on_progress = on_progress
        self.total = sum(f.size for f in files)
        self.done = sum(_size_on_disk(downloads / f.path) for f in files)
        self.files_done = 0
        self.reported = self.done

    def add(self, count: int, file_name: str) -> None:
        self.done += count
        if abs(self.done - self.reported) >= REPORT_BYTES:
            self.report("downloading", file_name)

    def file_done(self, files_done: int, file_name: str) -> None:
        self.files_done = files_done
        self.report("downloading", file_name)

    def report(self, stage: str, file_name: str) -> None:
        self.reported = self.done
        if self.on_progress is not None:
            self.on_progress(DownloadProgress(self.model_id, self.done, self.total, file_name, self.files_done,
                                              len(self.files), stage))


def _fetch(url: str, part: Path, remote: RemoteFile, tracker: _Tracker, cancel: threading.Event | None) -> None:
    """Download one file into `part` (resuming what is there), check it, rename it to its final name."""
    part.parent.mkdir(parents=True, exist_ok=True)
    with _hub_errors(tracker.model_id):
        for attempt in range(RESUME_ATTEMPTS + 1):
            try:
                _stream_into(url, part, remote, tracker, cancel)
                break
            except (httpx2.TransportError, OSError) as error:
                if attempt == 0 and isinstance(error, httpx2.ConnectError) or attempt == RESUME_ATTEMPTS:
                    raise  # not reachable at all, or the connection keeps dropping: the next run resumes
                time.sleep(RETRY_WAIT_SECONDS * (attempt + 1))
    _check_checksum(part, remote, tracker)
    os.replace(part, part.with_name(part.name.removesuffix(".part")))


def _stream_into(url: str, part: Path, remote: RemoteFile, tracker: _Tracker, cancel) -> None:
    have = _size_on_disk(part)
    if have > remote.size:  # not this file: start over
        tracker.add(-have, remote.path)
        part.unlink()
        have = 0
    if have == remote.size:
        return
    headers = build_hf_headers() | ({"Range": f"bytes={have}-"} if have else {})
    timeout = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT, read=READ_TIMEOUT_SECONDS)
    with get_session().stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
        hf_raise_for_status(response)
        if have and response.status_code != 206:  # the server ignored the range: take it from the top
            tracker.add(-have, remote.path)
            have = 0
        with open(part, "ab" if have else "wb") as out:
            for chunk in response.iter_bytes():  # as it arrives: a dropped link loses nothing received
                if cancel is not None and cancel.is_set():
                    raise CancelledError(f"download of {tracker.model_id} cancelled; run it again to resume")
                out.write(chunk)
                tracker.add(len(chunk), remote.path)
            out.flush()
            os.fsync(out.fileno())
    if _size_on_disk(part) != remote.size:
        raise OSError(f"{remote.path}: got {_size_on_disk(part)} of {remote.size} bytes")


def _check_checksum(part: Path, remote: RemoteFile, tracker: _Tracker) -> None:
    if remote.sha256:
        digest, expected = hashlib.sha256(), remote.sha256
    else:
        digest, expected = hashlib.sha1(f"blob {remote.size}\0".encode()), remote.git_oid
    with open(part, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        tracker.add(-remote.size, remote.path)
        part.unlink()
        raise ModelError(f"{remote.path} of {tracker.model_id} arrived damaged (checksum mismatch); run the "
                         "download again")


def _forget_other_commits(downloads: Path, keep: str) -> None:
    """Parts of an older revision cannot be resumed against a newer one."""
    if downloads.is_dir():
        for folder in downloads.iterdir():
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)


def _size_on_disk(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        part = path.with_name(path.name + ".part")
        return part.stat().st_size if part != path and part.is_file() else 0


def _unreachable(model_id: str, error: Exception) -> ModelError:
    return ModelError(
        f"cannot reach the Hugging Face Hub ({hub_endpoint()}) to download {model_id}: {error}. Check the "
        "connection, or download the model elsewhere and pass its folder with --model PATH"
    )


class _hub_errors:
    """Turns huggingface_hub / network exceptions into one-line ModelErrors."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, error, tb) -> None:
        if error is None:
            return
        model_id = self.model_id
        if isinstance(error, OfflineModeIsEnabled):
            raise ModelError(f"cannot download {model_id}: HF_HUB_OFFLINE is set. Unset it to download, or pass "
                             "a model folder you already have with --model PATH") from None
        if isinstance(error, httpx2.ConnectError):
            raise _unreachable(model_id, error) from None
        if isinstance(error, GatedRepoError):
            raise ModelError(f"{model_id} needs you to accept its licence on huggingface.co and log in "
                             "(`hf auth login`)") from None
        if isinstance(error, RepositoryNotFoundError):
            raise ModelError(f"unknown model {model_id!r}: no such repository on {hub_endpoint()}") from None
        if isinstance(error, RevisionNotFoundError):
            raise ModelError(f"{model_id} has no such revision on {hub_endpoint()}") from None
        if isinstance(error, HfHubHTTPError):
            status = error.response.status_code if error.response is not None else "?"
            raise ModelError(f"the Hub refused the download of {model_id} (HTTP {status}); try again later") from None
        if isinstance(error, httpx2.TransportError | OSError) and not isinstance(error, ModelError):
            raise ModelError(f"the download of {model_id} keeps failing ({type(error).__name__}: {error}); "
                             "run it again to resume") from None
