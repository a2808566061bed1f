"""Continue my track in the panel, driven like a producer: the real offscreen window, the real engine
process (tiny model) and a fake REAPER that renders the song's last bars and inserts the takes.

Screenshots of every step go to test-artifacts/gui/ (the README's demo comes from them).
"""

import numpy as np
import pytest
import soundfile
from PyQt6.QtCore import Qt

from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.settings import update_settings
from tests.fake_reaper import FakeProject, FakeReaper, ScriptError
from tests.test_cli_serve import free_udp_port
from tests.test_gui import (  # noqa: F401  (fixtures)
    JOB_TIMEOUT_MS,
    engine,
    library,
    models_dir,
    open_window,
    screenshot_widget,
)

BPM, SIGNATURE = 96.0, TimeSignature(6, 8)  # a bar: 1.875 s


def render_a_groove(scripts) -> None:
    """The fake REAPER's master mix: a kick on each dotted quarter and a decaying A minor chord."""

    def render() -> None:
        settings = scripts.project.render_settings
        start, end, rate = settings["RENDER_STARTPOS"], settings["RENDER_ENDPOS"], scripts.project.sample_rate
        t = np.arange(round(start * rate), round(end * rate)) / rate
        beat = 60.0 / BPM * 1.5
        since = t % beat
        kick = 0.4 * np.sin(2 * np.pi * (40 + 15 * np.exp(-since * 40)) * since) * np.exp(-since * 12)
        chord = sum(0.12 * np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63)) * np.exp(-(t % (2 * beat)) * 1.5)
        mix = (kick + chord).astype(np.float32)
        path = f"{settings['RENDER_FILE']}/{settings['RENDER_PATTERN']}.wav"
        soundfile.write(path, np.stack([mix, mix], axis=1), rate)

    scripts._main_on_command_render = render


@pytest.fixture
def export_dir(tmp_path):
    return tmp_path / "REAPER export"


@pytest.fixture
def reaper(export_dir):
    project = FakeProject(tempo=BPM, signature=(6, 8))
    project.cursor_seconds = 8.6 * 60 / BPM * 3  # the playhead in bar 9
    with FakeReaper(project=project) as fake:
        render_a_groove(fake.scripts)
        listen_port = free_udp_port()
        fake.device_port = listen_port

        def choose(settings) -> None:
            settings.daw.daw, settings.daw.reaper_port, settings.daw.reaper_listen_port = "reaper", fake.port, listen_port
            settings.folders.export_dir = str(export_dir)

        update_settings(choose)
        yield fake


@pytest.fixture
def window(qtbot, engine, library, reaper):  # noqa: F811  (fixtures from test_gui)
    window = open_window(qtbot, engine)
    qtbot.waitUntil(lambda: window.daw.snapshot().signature == SIGNATURE, timeout=10_000)
    yield window
    if engine.busy:
        engine.cancel_all()
        qtbot.waitUntil(lambda: not engine.busy, timeout=JOB_TIMEOUT_MS)
    window.background.shutdown()


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_continue_my_track_from_reaper_in_the_panel(qtbot, window, reaper, tmp_path, export_dir, engine):  # noqa: F811
    panel = window.open_continue_track()
    qtbot.waitExposed(panel)
    panel.prompt.setText("")
    qtbot.keyClicks(panel.prompt, "warm strings enter")
    panel.source_bars.setValue(2)
    panel.new_bars.setValue(2)
    panel.takes.setValue(2)
    panel.listen.setChecked(False)  # no audio device here (the JACK tests hear the streamed take)

    # 1-2. REAPER renders the two bars before the playhead; the key estimate is offered.
    click(qtbot, panel.take_button)
    qtbot.waitUntil(lambda: panel.status.text() == "Source ready", timeout=20_000)
    assert panel.source.kind == "render" and panel.source.end_beats == 8 * 3.0
    assert panel.source_info.text().startswith("2 bars rendered by REAPER, ending at bar 9 (96 BPM, 6/8)")
    assert panel.place_button.text() == "Place at bar 9"
    key = panel.suggestions.key_text
    assert key is not None and panel.use_key.isChecked() and key in panel.use_key.text()
    assert panel.text_preview.text().startswith(f"The model hears: “warm strings enter, 96 bpm, {key}”")
    # The engine encodes the source and prefills the words as they stand while the producer reads this;
    # done, it is ready, not "generating". Words typed on are prepared once the typing pauses.
    preparer = panel.session._preparer
    assert preparer.current.request.prompt == f"warm strings enter, 96 bpm, {key}"
    qtbot.waitUntil(lambda: panel.text_preview.text().endswith("”  ·  prepared"), timeout=JOB_TIMEOUT_MS)
    qtbot.keyClicks(panel.prompt, " softly")
    assert panel.text_preview.text() == f"The model hears: “warm strings enter softly, 96 bpm, {key}”"  # not yet
    qtbot.waitUntil(lambda: preparer.current.request.prompt == f"warm strings enter softly, 96 bpm, {key}", timeout=5_000)
    qtbot.waitUntil(lambda: panel.text_preview.text().endswith(f"softly, 96 bpm, {key}”  ·  prepared"),
                    timeout=JOB_TIMEOUT_MS)
    panel.prompt.setText("warm strings enter")
    qtbot.waitUntil(lambda: preparer.current.request.prompt == f"warm strings enter, 96 bpm, {key}", timeout=5_000)
    qtbot.waitUntil(lambda: engine.state == "ready" and not engine.busy, timeout=JOB_TIMEOUT_MS)
    qtbot.waitUntil(lambda: panel.text_preview.text().endswith("”  ·  prepared"), timeout=JOB_TIMEOUT_MS)
    screenshot_widget(panel, "continue-1-source")

    # 3. Two takes of two bars, streamed progress, fitted.
    click(qtbot, panel.continue_button)
    qtbot.waitUntil(lambda: panel.progress.value() >= 30, timeout=JOB_TIMEOUT_MS)
    screenshot_widget(panel, "continue-2-generating")
    qtbot.waitUntil(lambda: panel.take_list.count() == 2, timeout=JOB_TIMEOUT_MS)

    # 4. The takes, exact to the bar, in the list and in the panel's results.
    takes = panel.continuation.takes
    assert [take.audio.shape[0] for take in takes] == [bars_to_samples(2, BPM, SIGNATURE, 48000)] * 2
    assert panel.take_list.item(0).text().startswith(f"Take 1   ·   seed {takes[0].seed}   ·   2 bars, exact")
    assert [entry.path for entry in window.results_model.entries[:2]] == [take.path for take in takes]
    assert panel.status.text().startswith("2 takes ready: “warm strings enter, 96 bpm")
    panel.take_list.setCurrentRow(1)
    screenshot_widget(panel, "continue-3-takes")

    # 5. Take 2 goes into REAPER at bar 9.
    click(qtbot, panel.place_button)
    qtbot.waitUntil(lambda: "REAPER" in panel.status.text(), timeout=20_000)
    segue_track = reaper.project.tracks[-1]
    assert segue_track.items[-1].file == str(takes[1].path)
    assert segue_track.items[-1].position_seconds == pytest.approx(24 * 60 / BPM)
    screenshot_widget(panel, "continue-4-placed")

    # 6. Continue again from the placed take: the next two bars, at bar 11, on the same track.
    click(qtbot, panel.again_button)
    qtbot.waitUntil(lambda: panel.status.text().startswith("2 takes ready"), timeout=JOB_TIMEOUT_MS)
    assert panel.source.kind == "take" and panel.place_button.text() == "Place at bar 11"
    assert panel.source_info.text().startswith("2 bars of the placed take, ending at bar 11")
    click(qtbot, panel.place_button)
    qtbot.waitUntil(lambda: "REAPER" in panel.status.text(), timeout=20_000)
    assert segue_track.items[-1].position_seconds == pytest.approx(30 * 60 / BPM)
    assert segue_track.items[-1].file == str(panel.continuation.takes[0].path)
    screenshot_widget(panel, "continue-5-again")

    # REAPER refuses the next take: it goes to the export folder chosen in the settings.
    def refuse(job):
        raise ScriptError(f"REAPER could not insert {job['file']} (not an audio file REAPER reads?)")

    reaper.scripts._insert = refuse
    click(qtbot, panel.place_button)
    qtbot.waitUntil(lambda: "export folder" in panel.status.text(), timeout=20_000)
    copy = export_dir / panel.continuation.takes[0].path.name
    assert copy.read_bytes() == panel.continuation.takes[0].path.read_bytes()
    assert f"{copy.name} is in the export folder {export_dir}" in panel.status.text()

    # A file as the source, at the DAW's tempo.
    rate = 44100
    groove = np.sin(2 * np.pi * 220 * np.arange(bars_to_samples(3, BPM, SIGNATURE, rate)) / rate).astype(np.float32)
    soundfile.write(tmp_path / "idea.wav", 0.3 * groove, rate)
    panel.take_file(tmp_path / "idea.wav")
    qtbot.waitUntil(lambda: panel.status.text() == "Source ready", timeout=20_000)
    assert (panel.source.kind, panel.source.bars, panel.source.bpm, panel.source.end_beats) == ("file", 2, BPM, None)
    assert panel.source_info.text() == "2 bars of idea.wav (96 BPM, 6/8)"
    assert panel.place_button.text() == "Place" and panel.take_list.count() == 0
    panel.close()
