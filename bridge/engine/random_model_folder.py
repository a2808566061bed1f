"""Built-in random models (every family has some) are saved once, atomically, into Segue's model folder.

A folder is built in a sibling temporary folder and renamed into place, so a reader never sees half
a model; the marker file names the architecture and says the weights are random.
"""

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER_FILE = "segue_random_model.json"


def save_random_model(architecture: str, directory: Path, write: Callable[[Path], None]) -> Path:
    """`write(folder)` saves the model into a temporary folder that then becomes `directory`; return it."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        write(tmp)
        (tmp / MARKER_FILE).write_text(
            json.dumps({"architecture": architecture, "note": "random weights: makes noise"}), encoding="utf-8"
        )
        try:
            tmp.rename(directory)
        except OSError:
            if not (directory / MARKER_FILE).is_file():  # lost a race to another builder: theirs is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def is_random_model(directory: Path) -> bool:
    return (Path(directory) / MARKER_FILE).is_file()
