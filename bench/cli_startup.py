"""How long does `segue` keep a producer waiting before any work? (A benchmark, not a test.)

    python bench/cli_startup.py [--runs 5]

Times, each in a fresh process, wall clock and CPU (user + system, the engine worker included):
- `segue --help`: parsing arguments, nothing else;
- `segue generate x --model tiny --seconds 1`: a CLI job's fixed cost (start, engine worker, tiny
  model load, one second of audio, one file written).
Prints the best and the median of `--runs`, with the CPU model, its vector extensions and the load
average, which on a shared machine decide the wall-clock figures.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_speed import cpu_model  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parent.parent


def vector_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "?"
    return " ".join(flag for flag in flags.split(":", 1)[1].split() if flag in ("avx", "avx2", "avx512f", "avx512_vnni", "amx_tile"))


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of it and its children) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "SEGUE_DATA_DIR": scratch,
               "SEGUE_CONFIG_DIR": scratch, "SEGUE_OUTPUT_DIR": scratch}
        segue = [sys.executable, "-m", "bridge.cli"]
        cases = {
            "segue --help": [*segue, "--help"],
            "generate tiny 1 s": [*segue, "generate", "x", "--model", "tiny", "--seconds", "1"],
        }
        timed(cases["generate tiny 1 s"], env)  # builds the tiny model once, records its load time
        print(f"machine: {cpu_model()} ({vector_flags()}), {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.2f}")
        for name, command in cases.items():
            runs = [timed(command, env) for _ in range(args.runs)]
            walls, cpus = [wall for wall, _ in runs], [cpu for _, cpu in runs]
            print(f"{name:<20} wall best {min(walls):6.2f} s, median {statistics.median(walls):6.2f} s; "
                  f"CPU best {min(cpus):6.2f} s, median {statistics.median(cpus):6.2f} s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
