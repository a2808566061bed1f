"""`segue serve` end to end: a real process, real UDP, the tiny model, and a fake Live running AbletonOSC."""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from bridge import paths
from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
from bridge.settings import update_settings
from tests.fake_ableton import FakeLive, FakeSong
from tests.osc_client import OscTestClient
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_follows_live_and_answers_a_controller(tmp_path, write_tone):
    reply_client = OscTestClient(0)
    live_reply_port = free_udp_port()
    export_dir = tmp_path / "Live export"
    update_settings(lambda settings: setattr(settings.folders, "export_dir", str(export_dir)))
    # Upstream AbletonOSC: Live follows, but clips cannot go into the set.
    with FakeLive(reply_port=live_reply_port, song=FakeSong(tempo=240.0), patched=False) as live:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--daw", "ableton", "--model", "tiny", "--device", "cpu",
             "--osc-port", "0", "--reply-port", str(reply_client.port), "--ableton-port", str(live.port)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # AbletonOSC always replies to 11001; parallel test runs each need a port of their own.
            env={**os.environ, TEST_REPLY_PORT_VARIABLE: str(live_reply_port)},
        )
        try:
            banner = process.stdout.readline()
            match = re.search(r"OSC control on 127\.0\.0\.1:(\d+)", banner)
            assert match, banner + process.stderr.read()
            reply_client.server = ("127.0.0.1", int(match.group(1)))

            def connected_status():
                reply_client.send("/segue/status")
                args, _ = reply_client.receive_until("/segue/status", 5)
                return args if args[1] == 1 and args[4] else None

            assert wait_until(connected_status, 20, "Live connected") == ("ableton", 1, 240.0, 4, 4, 0, 0, 0)

            # One bar of 4/4 at 240 BPM: one second.
            reply_client.send("/segue/generate_bars", "four on the floor", 1)
            (job, path), _ = reply_client.receive_until("/segue/clip", 120)
            assert Path(path).parent == paths.output_dir().resolve()
            assert soundfile.info(path).duration == pytest.approx(1.0, abs=1 / 32000)

            # A take Live cannot take goes to the export folder the settings name.
            source = write_tone("two bars.wav", 2.0, 32000)
            reply_client.send("/segue/continue_file_bars", str(source), "", 1, 1, 1)
            (job, _, take_path, _), _ = reply_client.receive_until("/segue/take", 120)
            reply_client.send("/segue/place", job, 1)
            (_, _, route, _, message), _ = reply_client.receive_until("/segue/placed", 20)
            assert route == "export-folder", message
            assert (export_dir / Path(take_path).name).read_bytes() == Path(take_path).read_bytes()
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
            reply_client.close()
    assert process.returncode == 0, stderr
    assert "Ableton Live connected" in stderr
