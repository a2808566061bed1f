"""`segue doctor` against pretend DAWs over real UDP, and folders laid out like real installs."""

import os
import socket

import pytest

from bridge.cli import main
from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
from bridge.settings import update_settings
from bridge.setup import doctor
from bridge.setup.abletonosc import PINNED_COMMIT
from tests.daw_installs import abletonosc_sha256, abletonosc_zip, reaper_resource_dir, user_library
from tests.fake_ableton import FakeLive
from tests.fake_reaper import FakeReaper


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def choose_daw(daw: str, **ports: int) -> None:
    def change(settings) -> None:
        settings.daw.daw = daw
        for name, value in ports.items():
            setattr(settings.daw, name, value)

    update_settings(change)


def by_topic(findings: list[doctor.Finding], topic: str) -> list[doctor.Finding]:
    return [finding for finding in findings if finding.topic == topic]


def test_doctor_finds_live_its_version_and_the_patched_abletonosc(tmp_path, monkeypatch):
    remote_scripts = user_library(tmp_path, "macos") / "Remote Scripts"
    (tmp_path / "AbletonOSC.zip").write_bytes(abletonosc_zip())
    assert main(["setup", "ableton", "--remote-scripts-dir", str(remote_scripts), "--abletonosc-zip",
                 str(tmp_path / "AbletonOSC.zip"), "--abletonosc-sha256", abletonosc_sha256()]) == 0
    reply_port = free_udp_port()
    with FakeLive(reply_port=reply_port, version=(12, 1)) as live:
        monkeypatch.setenv(TEST_REPLY_PORT_VARIABLE, str(reply_port))  # 11001 may be taken by a parallel run
        choose_daw("ableton", ableton_port=live.port)
        findings = doctor.run_checks(remote_scripts_dir=remote_scripts)
    daw = by_topic(findings, "DAW")
    assert daw[0].status == doctor.OK and f"Ableton Live 12.1 answers at 127.0.0.1:{live.port}" in daw[0].message
    companions = by_topic(findings, "Companions")
    assert [f.status for f in companions] == [doctor.OK] and "Segue's patch" in companions[0].message
    assert PINNED_COMMIT  # the installed tree came from a zip shaped like the pinned commit's


def test_doctor_runs_reapers_info_script_and_reads_the_osc_surface(tmp_path):
    resource = reaper_resource_dir(tmp_path, "linux")
    assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 0
    listen_port = free_udp_port()
    with (resource / "reaper.ini").open("ab") as ini:  # as REAPER saves the surface the producer added
        ini.write(b'csurf_cnt=1\r\ncsurf_0=OSC "Segue" 3 8000 "127.0.0.1" 9000 1024 10 "Segue"\r\n')
    with FakeReaper(device_port=listen_port) as reaper:
        choose_daw("reaper", reaper_port=reaper.port, reaper_listen_port=listen_port)
        findings = doctor.run_checks(resource_dir=resource)
    daw = by_topic(findings, "DAW")
    assert [f.status for f in daw] == [doctor.OK, doctor.OK], daw
    assert "Segue's REAPER scripts answer (project info: 4/4)" in daw[1].message
    assert [f.status for f in by_topic(findings, "Companions")] == [doctor.OK, doctor.OK]


def test_a_silent_daw_a_taken_port_and_missing_parts_each_come_with_a_fix(tmp_path, capsys):
    resource = reaper_resource_dir(tmp_path, "linux")  # REAPER installed, Segue's scripts not yet
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        choose_daw("reaper", reaper_port=free_udp_port(), reaper_listen_port=taken.getsockname()[1])
        assert main(["doctor", "--resource-dir", str(resource), "--wait", "0.5"]) == 1
    finally:
        taken.close()
    out = capsys.readouterr().out
    assert "is taken by python" in out and f"(pid {os.getpid()})" in out
    assert "missing or from another Segue version" in out and "fix: quit REAPER, run: segue setup reaper" in out
    assert "Local listen port: 8000; Pattern config: Segue" in out
    assert out.rstrip().endswith("problem(s) to fix")

    choose_daw("reaper", reaper_port=free_udp_port(), reaper_listen_port=free_udp_port())
    findings = doctor.run_checks(resource_dir=resource, answer_seconds=0.3)
    assert by_topic(findings, "DAW")[0].status == doctor.PROBLEM
    assert "add an OSC control surface" in by_topic(findings, "DAW")[0].fix


def test_the_engine_line_says_not_measured_until_a_kernel_choice_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "fresh-cache"))  # not the session's, maybe measured
    finding = doctor.check_engine()[0]
    assert "not measured yet" in finding.message and "load average" in finding.message


def test_the_engine_line_shows_the_cached_kernel_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "fresh-cache"))
    kernels = pytest.importorskip("bridge.engine.cpu_kernels")  # the speed work's per-machine choice
    choice = kernels.KernelChoice(kernel="bf16-int8", step_ms={"bf16-int8": 9.8, "dynamic-int8": 27.0})
    kernels.save_choice(kernels.cpu_identity(), "tiny", choice)
    finding = doctor.check_engine()[0]
    assert finding.status == doctor.OK and "tiny: bf16-int8 (9.8 ms" in finding.message
