"""`segue engine serve` killed with -9 still takes down what it started (Ray's agents re-parent and live on)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.waiting import wait_until

# An owner like the engine server: it starts the reaper, then an "agent" with a child of its own
# (as Ray's raylet starts its agents); both outlive the owner's death, re-parented, as Ray's do.
OWNER = textwrap.dedent("""
    import subprocess, sys, time
    from bridge.engine.remote.reaper import start_reaper
    reaper = start_reaper()
    agent = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']).pid, flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    print(reaper.pid, agent.pid, agent.stdout.readline().strip(), flush=True)
    time.sleep(120)
""")


def test_a_killed_server_leaves_no_process_behind():
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, env=env)
    try:
        reaper, agent, agents_child = (int(pid) for pid in owner.stdout.readline().split())
        assert _alive(agent) and _alive(agents_child)
        time.sleep(1.5)  # the reaper notes the owner's descendants every second
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(5)
        wait_until(lambda: not _alive(agent) and not _alive(agents_child), 10, "the reaper to kill the orphans")
        wait_until(lambda: not _alive(reaper), 10, "the reaper to exit")
    finally:
        owner.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
