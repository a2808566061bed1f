"""Take down what a `segue engine serve` started, even when it is killed with -9.

Ray's GCS and raylet die with the process that started them, but its agents (dashboard, runtime
env) and the engine's workers are re-parented and live on. The reaper is a small process of its own
that notes the server's descendants every second and, when the server's end of its stdin pipe
closes (any exit, SIGKILL included), kills those still running. Linux only (it reads /proc);
elsewhere it only waits.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

SNAPSHOT_SECONDS = 1.0


def start_reaper() -> subprocess.Popen:
    """A reaper for this process; it acts when this process ends (closing its stdin)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bridge.engine.remote.reaper", str(os.getpid())],
        stdin=subprocess.PIPE,
        start_new_session=True,  # not in our process group: a terminal's Ctrl-C must not reach it first
    )


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time in clock ticks), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def _descendants(root: int, table: dict[int, tuple[int, str]]) -> set[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add((child, table[child][1]))
            stack.append(child)
    return found


def main(owner: int) -> None:
    if not Path("/proc/self/stat").exists():
        sys.stdin.buffer.read()
        return
    seen: set[tuple[int, str]] = set()
    owner_gone = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), owner_gone.set()), daemon=True).start()
    while True:
        seen |= _descendants(owner, _process_table())
        if owner_gone.wait(SNAPSHOT_SECONDS):
            break
    table = _process_table()
    for pid, started in seen:
        # Only the very processes seen: a pid reused since has another start time.
        if pid != os.getpid() and table.get(pid, (0, None))[1] == started:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)

if __name__ == "__main__":
    main(int(sys.argv[1]))
