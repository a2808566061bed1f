"""The processes a test started and their children, read from the OS (psutil when installed, else /proc)."""

import contextlib
import os
import sys
from pathlib import Path

import pytest

try:
    import psutil
except ImportError:  # not a dependency: Linux's /proc answers the same questions
    psutil = None


def require_process_table() -> None:
    if psutil is None and not sys.platform.startswith("linux"):
        pytest.skip("needs psutil or Linux's /proc to see child processes")


def engine_workers(parent_pid: int) -> list[int]:
    """The multiprocessing-spawned children of `parent_pid` (not its resource tracker)."""
    if psutil is not None:
        try:
            children = psutil.Process(parent_pid).children()
        except psutil.NoSuchProcess:
            return []
        return [child.pid for child in children if _is_spawned_worker(" ".join(child.cmdline()))]
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and _is_spawned_worker(command):
            workers.append(int(entry.name))
    return workers


def _is_spawned_worker(command: str) -> bool:
    return "spawn_main" in command and "resource_tracker" not in command


def is_running(pid: int) -> bool:
    """True while `pid` exists and has not exited (an exited, unreaped zombie holds no memory)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def initial_environment(pid: int) -> dict[str, str]:
    """The environment `pid` was started with."""
    if psutil is not None:
        return psutil.Process(pid).environ()
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def kill(pid: int) -> None:
    """SIGKILL (TerminateProcess on Windows) `pid` if it still exists."""
    with contextlib.suppress(OSError):  # already gone
        os.kill(pid, 9)
