"""`segue setup reaper`: scripts, command ids and pattern config into REAPER's resource folder, and out."""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.setup import changes, reaper
from bridge.setup.locations import find_reaper_resource_dir
from tests.daw_installs import (
    USER_KEYMAP,
    folder_snapshot,
    reaper_resource_dir,
    run_segue_unprivileged,
)
from tests.waiting import wait_until

PACKAGE_COMPANIONS = Path(__file__).resolve().parent.parent / "bridge/daw/companions/reaper"


@pytest.mark.parametrize("system", ["linux", "macos", "windows"])
def test_finds_reapers_resource_folder_on_each_system(tmp_path, monkeypatch, system):
    monkeypatch.delenv("APPDATA", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    installed = reaper_resource_dir(tmp_path, system)
    assert find_reaper_resource_dir(system=system, home=tmp_path) == installed


def test_a_missing_or_wrong_resource_folder_is_one_clear_line(tmp_path, capsys):
    assert main(["setup", "reaper", "--resource-dir", str(tmp_path)]) == 2
    assert "no reaper.ini there" in capsys.readouterr().err
    with pytest.raises(changes.SetupError, match="start REAPER once"):
        find_reaper_resource_dir(system="linux", home=tmp_path)


def test_setup_installs_everything_keeps_the_producers_keymap_and_uninstall_puts_it_back(tmp_path, capsys):
    resource = reaper_resource_dir(tmp_path, "windows")
    before = folder_snapshot(resource)

    assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 0
    out = capsys.readouterr().out
    for name in ("Segue_common.lua", "Segue_insert_clip.lua", "Segue_render_selection.lua", "Segue_project_info.lua"):
        assert (resource / "Scripts/Segue" / name).read_bytes() == (PACKAGE_COMPANIONS / name).read_bytes()
    assert (resource / "OSC/Segue.ReaperOSC").read_bytes() == (PACKAGE_COMPANIONS / "Segue.ReaperOSC").read_bytes()
    keymap = (resource / "reaper-kb.ini").read_bytes()
    assert keymap.startswith(USER_KEYMAP)  # the producer's lines, byte for byte, CRLF kept
    assert keymap[len(USER_KEYMAP):].split(b"\r\n")[:3] == (PACKAGE_COMPANIONS / "reaper-kb.ini").read_bytes().splitlines()
    assert "Device IP: 127.0.0.1; Device port: 9000; Local listen port: 8000; Pattern config: Segue" in out
    assert (resource / "reaper.ini").read_bytes() == before["reaper.ini"]  # never written

    assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert (resource / "reaper-kb.ini").read_bytes() == keymap

    assert main(["setup", "reaper", "--resource-dir", str(resource), "--uninstall"]) == 0
    assert folder_snapshot(resource) == before  # OSC/ and Scripts/ were there before: they stay


def test_uninstall_keeps_entries_the_producer_added_after_setup(tmp_path):
    resource = reaper_resource_dir(tmp_path, "linux")
    assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 0
    later = b'KEY 1 33 40045 0\r\n'
    with open(resource / "reaper-kb.ini", "ab") as keymap:  # REAPER saved a new shortcut since
        keymap.write(later)
    assert main(["setup", "reaper", "--resource-dir", str(resource), "--uninstall"]) == 0
    assert (resource / "reaper-kb.ini").read_bytes() == USER_KEYMAP + later


def test_dry_run_shows_the_steps_and_changes_nothing(tmp_path, capsys):
    resource = reaper_resource_dir(tmp_path, "macos")
    before = folder_snapshot(resource)
    assert main(["setup", "reaper", "--resource-dir", str(resource), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would do" in out and "create   Scripts/Segue/Segue_insert_clip.lua" in out
    assert "replace  reaper-kb.ini" in out
    assert folder_snapshot(resource) == before


def test_uninstall_after_an_upgrade_restores_the_state_before_the_first_install(tmp_path):
    resource = reaper_resource_dir(tmp_path, "linux")
    (resource / "Scripts/Segue").mkdir()
    (resource / "Scripts/Segue/Segue_project_info.lua").write_bytes(b"-- the producer's own hand-copied script\n")
    before = folder_snapshot(resource)
    assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 0

    # A newer Segue: one script changed, one dropped, one added, and a keymap line that changed.
    plan = reaper.build_plan(resource)
    upgraded = []
    for change in plan.changes:
        if change.relative_path.endswith("Segue_render_selection.lua"):
            continue
        if change.relative_path.endswith("Segue_insert_clip.lua"):
            change = changes.FileChange(change.relative_path, change.content + b"-- v2\n")
        upgraded.append(change)
    upgraded.append(changes.FileChange("Scripts/Segue/Segue_new.lua", b"-- new in v2\n"))
    new_line = b'SCR 4 0 SEGUE_INSERT_CLIP "Segue: insert clip (v2)" "Segue/Segue_insert_clip.lua"'
    keymap = reaper.merge_keymap((resource / "reaper-kb.ini").read_bytes(), (new_line,))
    upgraded = [c for c in upgraded if c.relative_path != "reaper-kb.ini"]
    upgraded.append(changes.FileChange("reaper-kb.ini", keymap, added_lines=(new_line,) + tuple(
        line for line in (PACKAGE_COMPANIONS / "reaper-kb.ini").read_bytes().splitlines()
        if b"SEGUE_INSERT_CLIP" not in line)))
    steps = changes.apply(changes.Plan("reaper", resource, upgraded))
    assert {str(step).split()[0] for step in steps} == {"replace", "remove", "create"}
    assert not (resource / "Scripts/Segue/Segue_render_selection.lua").exists()
    assert b"insert clip (v2)" in (resource / "reaper-kb.ini").read_bytes()

    assert main(["setup", "reaper", "--resource-dir", str(resource), "--uninstall"]) == 0
    assert folder_snapshot(resource) == before


def test_a_read_only_resource_folder_fails_with_one_line_and_changes_nothing(tmp_path):
    world = Path(tempfile.mkdtemp(prefix="segue-ro-"))  # reachable by the unprivileged user
    try:
        os.chmod(world, 0o777)
        home = world / "home"
        resource = reaper_resource_dir(home, "linux")
        for folder in [world / "segue-data", world / "segue-config", world / "segue-cache"]:
            folder.mkdir()
            os.chmod(folder, 0o777)
        for path in [home, *home.rglob("*")]:
            os.chmod(path, (0o555 if path.is_dir() else 0o444))
        before = folder_snapshot(resource)
        env = {f"SEGUE_{n.upper()}_DIR": str(world / f"segue-{n}") for n in ("data", "config", "cache")}
        result = run_segue_unprivileged(["setup", "reaper", "--resource-dir", str(resource)], env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "nothing was changed" in result.stderr
        assert folder_snapshot(resource) == before
        assert not any((world / "segue-data").rglob("state.json"))
    finally:
        for path in [world, *world.rglob("*")]:
            os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(world)


def test_setup_refuses_while_reaper_runs_and_says_why(tmp_path, capsys):
    resource = reaper_resource_dir(tmp_path, "linux")
    before = folder_snapshot(resource)
    program = tmp_path / "reaper"  # a process the system lists as "reaper"
    shutil.copy(shutil.which("sleep"), program)
    running = subprocess.Popen([str(program), "30"])
    try:
        wait_until(lambda: reaper.is_running(reaper.REAPER_PROGRAM_NAMES), 10.0, "the reaper process")
        assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 2
        assert "REAPER is running: quit it first" in capsys.readouterr().err
        assert folder_snapshot(resource) == before
        assert main(["setup", "reaper", "--resource-dir", str(resource), "--dry-run"]) == 0  # looking is fine
    finally:
        running.kill()
        running.wait(timeout=10)


def test_an_older_segue_line_for_the_same_command_id_is_replaced_in_place():
    old = b'KEY 1 32 40044 0\nSCR 4 0 SEGUE_INSERT_CLIP "old" "Segue/old.lua"\nKEY 1 33 40045 0\n'
    merged = reaper.merge_keymap(old, (b'SCR 4 0 SEGUE_INSERT_CLIP "Segue: insert clip" "Segue/Segue_insert_clip.lua"',))
    assert merged == old.replace(b'"old" "Segue/old.lua"', b'"Segue: insert clip" "Segue/Segue_insert_clip.lua"')


def test_a_portable_reaper_is_set_up_in_its_own_folder(tmp_path, capsys):
    # A portable install keeps reaper.ini and the resource folders beside the program.
    portable = tmp_path / "REAPER (x64)"
    resource = reaper_resource_dir(tmp_path, "windows")
    shutil.move(resource, portable)
    (portable / "reaper.exe").write_bytes(b"MZ")
    assert main(["setup", "reaper", "--resource-dir", str(portable)]) == 0
    assert (portable / "Scripts/Segue/Segue_insert_clip.lua").is_file()
    assert capsys.readouterr().out.startswith(f"REAPER: {portable}\n")
