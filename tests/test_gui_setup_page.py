"""The panel's Setup page: the doctor's checks against a pretend REAPER over real UDP, screenshotted."""

from pathlib import Path

from PyQt6.QtWidgets import QApplication, QLabel

from bridge.cli import main
from bridge.daw.reaper import ReaperLink
from bridge.settings import update_settings
from bridge.setup.doctor import OK, PROBLEM
from gui.background import Background
from gui.setup_page import SetupPage, first_time
from gui.theme import apply_theme
from tests.daw_installs import reaper_resource_dir
from tests.fake_reaper import FakeReaper
from tests.test_doctor import free_udp_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "gui"


def test_setup_page_shows_each_check_with_its_fix(qtbot, qapp, tmp_path, monkeypatch):
    apply_theme(qapp)
    resource = reaper_resource_dir(tmp_path, "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))  # where the doctor finds REAPER here
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["setup", "reaper", "--resource-dir", str(resource)]) == 0
    listen_port = free_udp_port()
    background = Background()
    with FakeReaper(device_port=listen_port) as reaper, ReaperLink(
        reaper_port=reaper.port, listen_port=listen_port
    ) as link:
        def change(settings) -> None:
            settings.daw.daw = "reaper"

        update_settings(change)
        assert first_time()
        page = SetupPage(background, lambda: link)
        qtbot.addWidget(page)
        page.show()
        qtbot.waitUntil(lambda: link.connected, timeout=10_000)
        page.check()
        qtbot.waitUntil(lambda: bool(page.findings), timeout=30_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        QApplication.processEvents()
        assert page.grab().save(str(ARTIFACTS / "setup-page.png"))
    background.shutdown()

    by_topic = {(f.topic, f.status) for f in page.findings}
    assert ("DAW", OK) in by_topic and ("Companions", OK) in by_topic
    surface = next(f for f in page.findings if "reaper.ini has no OSC control surface" in f.message)
    assert surface.status == PROBLEM and "Pattern config: Segue" in surface.fix
    texts = [label.text() for label in page.findChildren(QLabel)]
    assert any("Fix:" in text and "Local listen port: 8000" in text for text in texts)
    assert "thing(s) to fix" in page.summary.text()
