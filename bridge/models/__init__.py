"""The model manager: which MusicGen models are on this machine, downloading and removing them.

    from bridge.models import all_model_statuses, download_model, remove_model
    for status in all_model_statuses():        # known models + anything downloaded
        print(status.model_id, status.state, status.disk_bytes)
    cancel = threading.Event()                 # set() from the UI to stop; the next call resumes
    download_model("facebook/musicgen-small", on_progress=show, cancel=cancel)
"""

import importlib

# Imported on first use: `bridge.models.store` (what the engine needs to find an installed model)
# must not pull in the download side (huggingface_hub and its HTTP client) with this package.
_HOMES = {
    "DownloadProgress": "bridge.models.download",
    "download_model": "bridge.models.download",
    "hub_offline": "bridge.models.download",
    "ModelStatus": "bridge.models.store",
    "all_model_statuses": "bridge.models.store",
    "installed_model_dir": "bridge.models.store",
    "is_downloaded": "bridge.models.store",
    "model_status": "bridge.models.store",
    "remove_model": "bridge.models.store",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'bridge.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
