"""How long each model took to load on this machine, so the next load can show an ETA.

transformers gives no progress while it loads weights; the previous load of the same model on the
same device is the best estimate there is. Kept in Segue's cache folder; a lost or damaged file only
means the next load shows no ETA.
"""

import json

from bridge import paths
from bridge.audio.io import write_text_atomic

FILE_NAME = "load_times.json"


def _key(model_id: str, device: str) -> str:
    return f"{model_id} @ {device}"


def _read() -> dict:
    try:
        data = json.loads((paths.cache_dir() / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def expected_load_seconds(model_id: str, device: str) -> float | None:
    """Seconds the last load of `model_id` on `device` took, or None if never seen."""
    value = _read().get(_key(model_id, device))
    return float(value) if isinstance(value, int | float) and value > 0 else None


def record_load_seconds(model_id: str, device: str, seconds: float) -> None:
    data = _read()
    data[_key(model_id, device)] = round(seconds, 3)
    write_text_atomic(paths.cache_dir() / FILE_NAME, json.dumps(data, indent=1, sort_keys=True) + "\n")
