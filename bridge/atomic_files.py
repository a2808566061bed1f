"""Files appear complete or not at all: write beside the target, fsync, then rename over it.

A crash, a kill or a full disk can leave a hidden temporary file behind, never half a clip under
its real name (the clip library's integrity check and the DAW's folder watchers rely on this).
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path`; on success it replaces `path`, on error it goes.

    `suffix` defaults to the target's (soundfile picks the format from it); a folder watcher that
    must not see the file early wants a suffix like ".part".
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
