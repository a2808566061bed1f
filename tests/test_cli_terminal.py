"""`segue` as a producer meets it in a terminal: it answers at once and shows what the engine does.

The terminal is a real pseudo-terminal; the parent process is checked for what it must never load.
"""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "transformers")


def python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_parsing_any_command_loads_neither_torch_nor_transformers():
    loaded = python(
        "import sys, contextlib, io\n"
        "from bridge.cli import build_parser\n"
        "parser = build_parser()\n"
        "for command in ('generate', 'continue', 'continue-track', 'models', 'library', 'serve', 'gui', 'devices'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        parser.parse_args([command, '--help'])\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    assert loaded.strip() == "[]"


def run_in_terminal(args: list[str], cwd: Path, timeout_seconds: float = 300) -> tuple[str, str, int]:
    """Run `segue ARGS` with stderr on a pseudo-terminal and stdout piped: (terminal text, stdout, exit code)."""
    primary, secondary = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    process = subprocess.Popen([sys.executable, "-m", "bridge.cli", *args], stdout=subprocess.PIPE,
                               stderr=secondary, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(secondary)
    screen = bytearray()
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: every writer has exited
                    break
                if not chunk:
                    break
                screen += chunk
            elif process.poll() is not None:
                break
        stdout = process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0].decode()
    finally:
        process.kill()
        os.close(primary)
    return screen.decode(errors="replace"), stdout, process.returncode


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_in_a_terminal_generate_shows_loading_progress_eta_device_and_quality(tmp_path):
    screen, stdout, code = run_in_terminal(
        ["generate", "dusty drums", "--model", "tiny", "--seconds", "8", "--quality", "exact",
         "--out-dir", str(tmp_path)], cwd=tmp_path)
    assert code == 0, screen
    assert "loading tiny…" in screen
    assert "generating" in screen and "steps, ETA" in screen and "%" in screen
    assert "· cpu, quality exact" in screen
    assert screen.rstrip().endswith("on cpu, quality exact (fp32)")  # the status line was cleared for it
    assert Path(stdout.strip()).exists()


def test_piped_generate_prints_only_the_summary_and_the_paths_and_never_loads_torch(tmp_path):
    # The worker needs torch and transformers; its parent (the CLI, as the panel and `segue serve`)
    # only passes messages, and a whole job must not make it load them.
    command = ["generate", "dusty drums", "--model", "tiny", "--seconds", "1", "--out-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c",
         "import runpy, sys\n"
         f"sys.argv = ['segue', *{command!r}]\n"
         "try:\n"
         "    runpy.run_module('bridge.cli', run_name='__main__')\n"
         "finally:\n"
         f"    print('heavy:', sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    path, heavy = done.stdout.splitlines()
    assert heavy == "heavy: []"
    assert Path(path).exists()
    assert len(done.stderr.splitlines()) == 1 and "take(s) in" in done.stderr and "\r" not in done.stderr
