"""The Lua companions in bridge/daw/companions/reaper: they compile, and they speak the contract Segue writes."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.daw.reaper_jobs import ReaperJob

COMPANIONS = Path(__file__).resolve().parent.parent / "bridge" / "daw" / "companions" / "reaper"
LUAC = shutil.which("luac5.4") or shutil.which("luac")


@pytest.mark.skipif(LUAC is None, reason="needs luac (Debian package lua5.4, installed by .ci/run)")
@pytest.mark.parametrize("script", sorted(path.name for path in COMPANIONS.glob("*.lua")))
def test_each_companion_script_compiles(script):
    result = subprocess.run([LUAC, "-p", str(COMPANIONS / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_job_key_segue_writes_is_read_by_the_scripts():
    lua = "\n".join(path.read_text() for path in COMPANIONS.glob("*.lua"))
    keys_read_by_lua = set(re.findall(r"job\.([a-z_]+)", lua))
    jobs = [
        ReaperJob("insert", {"file": "/a.wav", "track_index": "0", "track_name": "Segue", "position_beats": "4"}),
        ReaperJob("render", {"output_file": "/a.wav", "bounds": "custom", "start_seconds": "0", "end_seconds": "1"}),
        ReaperJob("render", {"output_file": "/a.wav", "bounds": "beats", "start_beats": "0", "end_beats": "4"}),
    ]
    for job in jobs:
        keys_written = {line.split("=", 1)[0] for line in job.to_text().splitlines()}
        assert keys_written <= keys_read_by_lua, keys_written - keys_read_by_lua


def test_the_action_ids_segue_uses_by_default_are_the_ones_registered():
    from bridge.daw import reaper

    registered = set(re.findall(r"^SCR \d+ \d+ (\S+)", (COMPANIONS / "reaper-kb.ini").read_text(), re.M))
    defaults = {reaper.INSERT_ACTION, reaper.RENDER_ACTION, reaper.INFO_ACTION}
    assert {"_" + command_id for command_id in registered} == defaults
