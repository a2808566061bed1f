"""A converted model folder appears complete or not at all.

It is written into a hidden sibling temporary folder that is renamed into place at the end; on any
error the temporary folder goes, so a failed conversion leaves nothing behind.
"""

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_folder_atomically(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """`write(folder)` fills a temporary folder that then replaces `out_dir`; return `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
