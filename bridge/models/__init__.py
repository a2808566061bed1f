"""The model manager: which MusicGen models are on this machine, downloading and removing them.

    from bridge.models import all_model_statuses, download_model, remove_model
    for status in all_model_statuses():        # known models + anything downloaded
        print(status.model_id, status.state, status.disk_bytes)
    cancel = threading.Event()                 # set() from the UI to stop; the next call resumes
    download_model("facebook/musicgen-small", on_progress=show, cancel=cancel)
"""

from bridge.models.download import DownloadProgress, download_model, hub_offline
from bridge.models.store import (
    ModelStatus,
    all_model_statuses,
    installed_model_dir,
    is_downloaded,
    model_status,
    remove_model,
)

__all__ = [
    "DownloadProgress",
    "ModelStatus",
    "all_model_statuses",
    "download_model",
    "hub_offline",
    "installed_model_dir",
    "is_downloaded",
    "model_status",
    "remove_model",
]
