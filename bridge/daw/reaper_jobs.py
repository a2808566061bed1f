"""The job and result files Segue exchanges with its REAPER companion scripts (bridge/daw/companions/reaper/*.lua).

A ReaScript cannot receive OSC arguments nor send OSC, so work goes through two files in an
exchange folder both sides find on their own: `<Segue data folder>/reaper/` (Segue_common.lua
computes the same folder, honouring SEGUE_DATA_DIR).

1. Segue deletes `result.txt` and writes `job.txt` (atomically);
2. Segue triggers the script with `/action/<command id>`;
3. the script reads and deletes `job.txt`, does the work, and writes `result.txt` (temp file, rename);
4. Segue waits for a `result.txt` carrying the job's id, or gives up after a timeout.

Both files are UTF-8 text with one `key=value` per line: the key is letters and underscores, the
value is the rest of the line (it may contain '=') and never contains a line break.

job.txt
    segue_job=1                  format version
    id=<32 hex digits>           echoed in the result
    action=insert|render|info    which script the job is for
    expires_unix=<seconds>       wall-clock time after which the script refuses the job
    insert: file=<absolute path>  track_index=<0-based, -1 = new track at the end>
            track_name=<name of a new track>  [position_beats=<quarter notes from the project start>;
            absent = the edit cursor]
    render: output_file=<absolute path ending in .wav>  bounds=time_selection|custom
            [start_seconds=<s>  end_seconds=<s>, for custom bounds]

result.txt
    segue_result=1
    id=<the job's id>
    status=ok|error
    message=<one line for the producer>
    insert: track_index  position_seconds  length_seconds
    render: output_file  start_seconds  end_seconds
    always: tempo_bpm  signature_numerator  signature_denominator  (at the job's position or the edit cursor)
"""

import math
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bridge import paths
from bridge.audio.io import write_text_atomic
from bridge.errors import InvalidParameterError

FORMAT_VERSION = "1"
JOB_FILE = "job.txt"
RESULT_FILE = "result.txt"
ACTIONS = ("insert", "render", "info")
# Keys are what Segue_common.lua matches with "^([%a_]+)=(.*)$", kept to lower-case ASCII.
_KEY = re.compile(r"[a-z_]+")


def default_exchange_dir() -> Path:
    """The folder Segue_common.lua uses: `<Segue data folder>/reaper`."""
    directory = paths.data_dir() / "reaper"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def format_number(value: float) -> str:
    """A number as Lua's tonumber() reads it back exactly enough (10 significant digits)."""
    if not math.isfinite(value):
        raise InvalidParameterError(f"cannot pass {value} to REAPER")
    return f"{value:.10g}"


@dataclass
class ReaperJob:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    lifetime_seconds: float = 60.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_text(self) -> str:
        if self.action not in ACTIONS:
            raise InvalidParameterError(f"unknown REAPER job {self.action!r}")
        lines = {
            "segue_job": FORMAT_VERSION,
            "id": self.id,
            "action": self.action,
            "expires_unix": str(int(time.time() + self.lifetime_seconds)),
            **self.fields,
        }
        for key, value in lines.items():
            if not _KEY.fullmatch(key) or "\n" in value or "\r" in value:
                raise InvalidParameterError(
                    f"cannot pass {key}={value!r} to REAPER (line breaks are not allowed)"
                )
        return "".join(f"{key}={value}\n" for key, value in lines.items())


def write_job(exchange_dir: Path, job: ReaperJob) -> Path:
    """Remove any old result, then write the job atomically; returns the job file."""
    exchange_dir.mkdir(parents=True, exist_ok=True)
    (exchange_dir / RESULT_FILE).unlink(missing_ok=True)
    return write_text_atomic(exchange_dir / JOB_FILE, job.to_text())


def withdraw_job(exchange_dir: Path, job: ReaperJob) -> None:
    """Delete the job file if it is still this job's, so a late trigger does not act on it."""
    job_file = exchange_dir / JOB_FILE
    try:
        if f"id={job.id}" in job_file.read_text(encoding="utf-8").splitlines():
            job_file.unlink(missing_ok=True)
    except OSError:
        pass


def parse_key_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        if separator and _KEY.fullmatch(key):
            values[key] = value
    return values


def read_result(exchange_dir: Path, job_id: str) -> dict[str, str] | None:
    """The result for `job_id`, or None while there is none (or only an older job's)."""
    try:
        text = (exchange_dir / RESULT_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    values = parse_key_values(text)
    if values.get("segue_result") != FORMAT_VERSION or values.get("id") != job_id:
        return None
    return values


def wait_for_result(
    exchange_dir: Path, job_id: str, timeout_seconds: float, poll_seconds: float = 0.05
) -> dict[str, str] | None:
    """Poll for the job's result until `timeout_seconds` have passed; None if it never came."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = read_result(exchange_dir, job_id)
        if result is not None or time.monotonic() >= deadline:
            return result
        time.sleep(poll_seconds)
