"""Convert once at download: run a converter in a child process, prove the result loads, install it.

Checkpoints published in their authors' own format (AudioGen's audiocraft pickles, Stable Audio 3's
stable-audio-3 safetensors) are converted into `downloads/<commit>/converted` in a child process (a
multi-GB job the panel's process should not hold, and that an out-of-memory kill must not take
down), loaded once in another child (bridge/models/verify.py), and moved to `files/`. The
downloaded originals are then deleted: the converted folder is all Segue loads.

A checkpoint the converter refuses (wrong or corrupt content: the same commit would convert the same
way again) leaves nothing in the store. A converter that died without answering (out of memory?)
keeps the downloaded files, so the next attempt need not fetch them again.
"""

import os
import shutil
import time
from pathlib import Path

from huggingface_hub import hf_hub_url

from bridge.errors import ModelError
from bridge.models import download, store
from bridge.models.verify import NO_ANSWER, run_in_child, verify_model_loads


def convert_verify_install(model_id: str, manifest: dict, tracker: "download._Tracker", converter: str,
                           inputs: tuple[Path, ...], what: str) -> Path:
    """Run `converter` ("module:function", called as function(*inputs, out_dir)) and install its folder.

    `what` names the checkpoint in the error ("the AudioGen checkpoint"). Raises ModelError.
    """
    folder = store.model_dir(model_id)
    converted = folder / "downloads" / manifest["commit"] / "converted"
    tracker.report("converting", "")
    problem = run_in_child(_convert, (converter, *(str(path) for path in inputs), str(converted)),
                           f"segue-convert-{model_id.rsplit('/', 1)[-1]}")
    if problem is not None:
        error = ModelError(f"converting {what} failed: {problem}")
        if problem == NO_ANSWER:
            store.write_manifest(model_id, {**manifest, "state": store.FAILED, "error": str(error)})
        else:
            shutil.rmtree(folder, ignore_errors=True)
        raise error
    tracker.report("verifying", "")
    try:
        verify_model_loads(converted)
    except ModelError as error:
        store.write_manifest(model_id, {**manifest, "state": store.FAILED, "error": str(error)})
        raise
    installed = folder / "files"
    if installed.exists():
        shutil.rmtree(installed)
    os.replace(converted, installed)
    shutil.rmtree(folder / "downloads", ignore_errors=True)  # the originals: GBs no longer needed
    store.write_manifest(model_id, {**manifest, "state": store.READY, "verified_at": time.time()})
    return installed


def start_download(model_id: str, commit: str, files: list[download.RemoteFile], format_name: str,
                   on_progress) -> tuple[dict, "download._Tracker", Path]:
    """Manifest, byte tracker and `downloads/<commit>` folder for a checkpoint that will be converted."""
    folder = store.model_dir(model_id)
    downloads = folder / "downloads" / commit
    download._forget_other_commits(folder / "downloads", keep=commit)
    manifest = {"model_id": model_id, "endpoint": download.hub_endpoint(), "commit": commit, "state": "downloading",
                "format": format_name, "files": [{"path": f.path, "size": f.size} for f in files]}
    store.write_manifest(model_id, manifest)
    return manifest, download._Tracker(model_id, files, downloads / "checkpoint", on_progress), downloads


def add_text_encoder(manifest: dict, tracker: "download._Tracker", source: dict, files: list[download.RemoteFile],
                     into: Path) -> None:
    """Record the text encoder's files (`source`: its repo and commit) in the manifest and the progress."""
    _count_more(tracker, files, into)
    manifest["text_encoder"] = source
    manifest["files"] += [{"path": f"{source['repo']}/{f.path}", "size": f.size} for f in files]
    store.write_manifest(manifest["model_id"], manifest)


def fetch_all(repo_id, commit, files, into: Path, tracker, cancel, files_before: int) -> None:
    for index, remote in enumerate(files):
        target = into / remote.path
        if not target.is_file():
            url = hf_hub_url(repo_id, remote.path, revision=commit, endpoint=download.hub_endpoint())
            download._fetch(url, target.with_name(target.name + ".part"), remote, tracker, cancel)
        tracker.file_done(files_before + index + 1, remote.path)


def _count_more(tracker, files: list[download.RemoteFile], into: Path) -> None:
    """Count the text encoder's files in the same progress (known only once the checkpoint's config is read)."""
    tracker.files = [*tracker.files, *files]
    tracker.total += sum(f.size for f in files)
    tracker.done += sum(download._size_on_disk(into / f.path) for f in files)


def _convert(converter: str, *args_and_sender) -> None:
    *args, sender = args_and_sender
    try:
        import importlib

        module_name, function_name = converter.split(":")
        convert = getattr(importlib.import_module(module_name), function_name)
        convert(*(Path(arg) for arg in args))
        sender.send(None)
    except BaseException as error:  # noqa: BLE001 - every failure is the answer
        sender.send(str(error).splitlines()[0] if str(error) else type(error).__name__)
