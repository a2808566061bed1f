"""Which programs are running, and which process holds a UDP port, as far as the system tells.

psutil answers both on every system when it is installed. Without it, Linux is read from /proc
(`/proc/<pid>/comm`; `/proc/net/udp[6]` maps a port to a socket inode, `/proc/<pid>/fd` maps the
inode to its process, which only works for the user's own processes), macOS from `ps`, Windows
from `tasklist`. Where nothing tells, the answer says "unknown" rather than guessing.
"""

import errno
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PortState:
    port: int
    free: bool
    owner: str | None = None  # "name (pid N)" when the system says who holds it


def running_program_names() -> list[str]:
    """Names of the running processes (executable names, as the system reports them)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return [p.info["name"] or "" for p in psutil.process_iter(["name"])]
    if sys.platform.startswith("linux"):
        names = []
        for comm in Path("/proc").glob("[0-9]*/comm"):
            try:
                names.append(comm.read_text().strip())
            except OSError:
                continue  # the process ended while we looked
        return names
    if sys.platform.startswith("win"):
        command = ["tasklist", "/fo", "csv", "/nh"]
        lines = _run(command)
        return [line.split('","')[0].strip('"') for line in lines if line.startswith('"')]
    return [Path(line.strip()).name for line in _run(["ps", "-A", "-o", "comm="]) if line.strip()]


def is_running(program_names: set[str]) -> bool:
    """True when a process with one of these names (compared without case) runs."""
    wanted = {name.lower() for name in program_names}
    return any(name.lower() in wanted for name in running_program_names())


def udp_port_state(port: int, host: str = "127.0.0.1") -> PortState:
    """Whether Segue could bind UDP `port` on `host` now, and who holds it if not."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((host, port))
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1), errno.EACCES):
            raise
        return PortState(port, free=False, owner=udp_port_owner(port))
    finally:
        probe.close()
    return PortState(port, free=True)


def udp_port_owner(port: int) -> str | None:
    """'name (pid N)' of the process bound to UDP `port`, or None when the system does not say."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            for connection in psutil.net_connections(kind="udp"):
                if connection.laddr and connection.laddr.port == port and connection.pid:
                    return f"{psutil.Process(connection.pid).name()} (pid {connection.pid})"
        except (psutil.Error, OSError):
            return None
        return None
    if sys.platform.startswith("linux"):
        inodes = _proc_udp_inodes(port)
        return _proc_inode_owner(inodes) if inodes else None
    return None


def _proc_udp_inodes(port: int) -> set[str]:
    # /proc/net/udp: "sl local_address rem_address st tx:rx tr tm->when retrnsmt uid timeout inode";
    # local_address is HEXIP:HEXPORT (proc(5)).
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _proc_inode_owner(inodes: set[str]) -> str | None:
    targets = {f"socket:[{inode}]" for inode in inodes}
    for process in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (process / "fd").iterdir():
                if os.readlink(fd) in targets:
                    name = (process / "comm").read_text().strip()
                    return f"{name} (pid {process.name})"
        except OSError:
            continue  # another user's process, or it ended
    return None


def _run(command: list[str]) -> list[str]:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return result.stdout.splitlines()
