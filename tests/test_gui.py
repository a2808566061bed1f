"""The control panel, driven like a producer would: a real offscreen window over the real engine process.

Screenshots of the main states go to test-artifacts/gui/ (gitignored) for a human to look at.
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import QApplication

from bridge.library import ClipLibrary, ClipQuery
from gui.clip_store import ClipStore
from gui.engine_controller import EngineController
from gui.main_window import MainWindow
from gui.theme import apply_theme

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "gui"
JOB_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, segue_cache_dir):
    """The module's model folder, shared by this process and the engine process (which reads it at start)."""
    folder = tmp_path_factory.mktemp("panel-models")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEGUE_MODELS_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def engine(qapp, models_dir):
    """One engine process for the module: starting one imports torch, which takes seconds."""
    apply_theme(qapp)
    controller = EngineController(store=None, device="cpu")
    controller.start()
    yield controller
    controller.close()


@pytest.fixture
def library(engine):
    """This test's clip library (in its own data folder), where the panel records takes."""
    with ClipLibrary() as library:
        engine.store = ClipStore(library)
        yield library


def open_window(qtbot, engine) -> MainWindow:
    window = MainWindow(engine)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitActive(window)
    window.form.select_model("tiny")
    qtbot.waitUntil(lambda: not window.background.busy)  # the library's recent clips are listed
    return window


@pytest.fixture
def window(qtbot, engine, library):
    window = open_window(qtbot, engine)
    yield window
    if engine.busy:
        engine.cancel_all()
        qtbot.waitUntil(lambda: not engine.busy, timeout=JOB_TIMEOUT_MS)
    window.background.shutdown()


def generate(qtbot, window: MainWindow, prompt: str, bars: float = 1, variations: int = 1) -> list:
    type_prompt(qtbot, window, prompt)
    set_length(window, bars, "bars")
    window.form.variations.setValue(variations)
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS) as ready:
        window.generate()
    return ready.args[1]


def screenshot(window: MainWindow, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    QApplication.processEvents()
    assert window.grab().save(str(path)), f"could not save {path}"
    return path


def screenshot_widget(widget, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    widget.show()
    QApplication.processEvents()
    assert widget.grab().save(str(path)), f"could not save {path}"
    return path


def type_prompt(qtbot, window: MainWindow, text: str) -> None:
    line = window.form.prompt.lineEdit()
    line.clear()
    qtbot.keyClicks(line, text)


def set_length(window: MainWindow, value: float, unit: str) -> None:
    window.form.length_unit.setCurrentText(unit)
    window.form.length.setValue(value)


def drag_first_clip(qtbot, window: MainWindow) -> list:
    """Press on the first row and move the mouse past the drag distance; return the QDrags started.

    The offscreen platform ends a drag at once (no drop target), after Segue built it."""
    drags = []
    view = window.results
    view.drag_started.connect(drags.append)
    start = view.visualRect(view.model().index(0)).center()
    step = QApplication.startDragDistance() + 5
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), start + QPoint(step, 2))
    qtbot.mouseMove(view.viewport(), start + QPoint(2 * step, 4))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(2 * step, 4))
    return drags


class StallMeter:
    """A 5 ms QTimer on the Qt thread; the longest gap between its ticks is the longest stall."""

    def __init__(self) -> None:
        self.longest_seconds = 0.0
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(5)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest_seconds = max(self.longest_seconds, now - self._last)
        self._last = now

    def stop(self) -> float:
        self._timer.stop()
        return self.longest_seconds


def test_type_a_prompt_generate_two_variations_see_progress_then_two_clips(qtbot, window, capsys):
    type_prompt(qtbot, window, "dusty lo-fi hip hop drums")
    set_length(window, 2, "bars")
    window.form.variations.setValue(2)
    window.form.advanced_toggle.click()
    assert window.form.seed.isVisible() and window.form.temperature.isVisible()
    screenshot(window, "1-ready-advanced-open")
    window.form.advanced_toggle.click()
    seen_progress = []
    window.engine.progress.connect(lambda job, done, total, eta: seen_progress.append((done, total, eta)))
    meter = StallMeter()

    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
        assert window.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: window.progress.maximum() == 100 and window.progress.value() > 0,
                        timeout=JOB_TIMEOUT_MS)
        assert "ETA" in window.progress.format() or window.progress.value() == 100
        screenshot(window, "2-generating")

    stall = meter.stop()
    with capsys.disabled():
        print(f"\n[gui] longest event-loop stall while generating: {stall * 1000:.0f} ms")
    assert stall < 5.0, "the window froze while generating"  # sanity bound, not a performance test
    assert seen_progress and seen_progress[-1][0] == seen_progress[-1][1]

    clips = window.results_model.entries
    assert len(clips) == 2
    assert [clip.variation for clip in clips] == [0, 1]
    assert clips[0].seed != clips[1].seed
    for clip in clips:
        assert clip.path.is_file() and clip.path.parent == Path(sys.modules["bridge.paths"].output_dir())
        assert clip.prompt == "dusty lo-fi hip hop drums"
        assert clip.bars == pytest.approx(2.0) and clip.seconds == pytest.approx(4.0)
        assert clip.peaks.shape[1] == 2 and clip.peaks.max() > 0  # a real waveform, not silence
    assert window.progress.value() == 100 and "2 new clips" in window.activity.text()
    assert window.form.history()[0] == "dusty lo-fi hip hop drums"
    assert not window.cancel_button.isEnabled() and window.retry_button.isEnabled()
    assert window.banner.message == ""
    assert window.status.engine.text() == "engine ready · cpu"  # engine state and device
    screenshot(window, "3-results")


def test_retry_runs_the_same_input_again_with_a_new_seed(qtbot, window):
    [first] = generate(qtbot, window, "uk garage 2-step")
    type_prompt(qtbot, window, "something else entirely")  # Retry ignores what the form says now
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS) as ready:
        qtbot.keyClick(window.form.prompt.lineEdit(), Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    [again] = ready.args[1]
    assert again.prompt == first.prompt == "uk garage 2-step"
    assert again.seed != first.seed and again.seconds == first.seconds


def test_cancel_a_long_job(qtbot, window):
    type_prompt(qtbot, window, "a very long ambient drone")
    set_length(window, 120, "seconds")
    window.form.variations.setValue(1)
    window.generate()
    qtbot.waitUntil(lambda: window.progress.maximum() == 100 and window.progress.value() > 0,
                    timeout=JOB_TIMEOUT_MS)

    with qtbot.waitSignal(window.engine.job_cancelled, timeout=JOB_TIMEOUT_MS):
        qtbot.keyClick(window.form.prompt.lineEdit(), Qt.Key.Key_Escape)  # the Cancel shortcut
    assert window.activity.text() == "Cancelled"
    assert window.results_model.entries == []
    assert not window.cancel_button.isEnabled()
    assert window.banner.message == ""


def test_drop_an_audio_file_on_the_window_to_continue_it(qtbot, window, write_tone):
    tone = write_tone("bassline.wav", seconds=1.5, rate=44100)
    set_length(window, 1, "seconds")
    window.form.variations.setValue(1)
    type_prompt(qtbot, window, "")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tone))])
    target = window.results.viewport()
    where = QPointF(target.rect().center())

    enter = QDragEnterEvent(where.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
        drop = QDropEvent(where, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                          Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(window, drop)
        assert drop.isAccepted()

    [clip] = window.results_model.entries
    assert clip.continues == tone.resolve()
    assert clip.seconds == pytest.approx(1.0, abs=0.02)
    assert window.continue_source.currentText() == "file: bassline.wav"
    screenshot(window, "4-continued-drop")


def test_a_dropped_text_file_is_refused(qtbot, window, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(notes))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_drag_a_clip_out_as_a_file_url(qtbot, window):
    [clip] = generate(qtbot, window, "synthwave arp")
    drags = drag_first_clip(qtbot, window)

    assert len(drags) == 1
    urls = drags[0].mimeData().urls()
    assert [url.isLocalFile() for url in urls] == [True]
    dragged = Path(urls[0].toLocalFile())
    assert dragged == clip.path.resolve() and dragged.is_file()
    info = soundfile.info(dragged)
    assert info.format == "WAV" and info.frames > 0


def test_keep_rename_and_discard_go_to_the_clip_library(qtbot, window, library):
    first, second = generate(qtbot, window, "neo soul keys", variations=2)
    assert [first.name, second.name] == [f"Clip {first.clip_id} A", f"Clip {second.clip_id} B"]
    window.results.setFocus()
    window.results.select_entry(first)
    qtbot.keyClick(window.results, Qt.Key.Key_K)
    assert library.get(first.clip_id).kept

    window.results.select_entry(first)
    window.rename_selected()
    editor = QApplication.focusWidget()
    editor.selectAll()
    qtbot.keyClicks(editor, "Keys for the bridge")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: first.name == "Keys for the bridge")  # the editor commits on the next loop turn
    assert library.get(first.clip_id).name == "Keys for the bridge"

    window.results.select_entry(second)
    qtbot.keyClick(window.results, Qt.Key.Key_Delete)
    assert window.results_model.entries == [first]
    assert library.get(second.clip_id).status == "trashed" and not second.path.exists()
    assert "trash" in window.activity.text()
    screenshot(window, "6-kept-and-renamed")


def test_a_clip_dragged_into_the_daw_is_not_trashed_when_discarded(qtbot, window, library):
    [clip] = generate(qtbot, window, "trap 808")
    assert len(drag_first_clip(qtbot, window)) == 1
    window.discard_selected()
    assert window.results_model.entries == [] and clip.path.is_file()
    assert library.get(clip.clip_id).status == "ready"


def test_reopening_the_panel_lists_the_library_newest_first(qtbot, window, engine, library):
    older = generate(qtbot, window, "older idea")
    newer = generate(qtbot, window, "newer idea")
    window.close()
    reopened = open_window(qtbot, engine)
    assert [entry.clip_id for entry in reopened.results_model.entries] == [newer[0].clip_id, older[0].clip_id]
    assert reopened.results_model.entries[0].peaks.max() > 0
    assert library.count(ClipQuery()) == 2
    reopened.background.shutdown()


def test_mistakes_show_as_one_line_in_the_window(qtbot, window):
    type_prompt(qtbot, window, "")
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert "type a prompt" in window.banner.message.lower()
    assert "Traceback" not in window.banner.message
    qtbot.mouseClick(window.continue_button, Qt.MouseButton.LeftButton)
    assert "select a clip to continue" in window.banner.message.lower()
    assert not window.engine.busy
    screenshot(window, "5-error")


def test_segue_gui_is_a_subcommand_and_imports_qt_only_when_it_runs():
    code = (
        "import sys; from bridge.cli import build_parser; "
        "args = build_parser().parse_args(['gui']); "
        "assert args.handler.__name__ == 'run_gui'; "
        "assert not any(name.startswith('PyQt6') for name in sys.modules), 'Qt imported too early'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


@pytest.mark.jack
def test_click_a_clip_to_hear_it_through_the_chosen_output_then_ab_to_the_other_take(qtbot, window, jack_server):
    from bridge.audio.capture import Recorder
    from bridge.audio.devices import find_device, remember_device

    remember_device("output", find_device(jack_server.loopback_device, "output"))
    first, second = generate(qtbot, window, "deep house groove", bars=2, variations=2)
    with Recorder(jack_server.loopback_device, history_seconds=10.0) as recorder:
        view = window.results
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(view.model().index(0)).center())
        assert window.auditioner.playing is first and window.results_model.playing is first
        assert window.auditioner.device_label().startswith(jack_server.loopback_device)

        def heard() -> bool:
            recent = recorder.last_seconds(0.5)
            return recent.size > 0 and float(abs(recent).max()) > 0.01

        qtbot.waitUntil(heard, timeout=10_000)  # the take comes back through the loopback
        screenshot(window, "7-auditioning")

        qtbot.wait(300)
        window.switch_take()  # A/B: the other take, from the same beat
        assert window.auditioner.playing is second and window.results.selected_entry() is second
        assert window.auditioner.position_seconds() > 0.25
        window.results.setFocus()
        qtbot.keyClick(window.results, Qt.Key.Key_Space)  # stop
        assert window.auditioner.playing is None and window.results_model.playing is None
    window._show_audio_health()
    assert window.status.audio.text() != "audio idle"  # "audio ok", or the underrun counts if the machine is busy
    assert jack_server.loopback_device in window.status.audio.toolTip()


def test_settings_choose_ableton_and_the_panel_follows_its_tempo_then_sends_a_clip(qtbot, window, monkeypatch, tmp_path):
    from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
    from bridge.settings import load_settings
    from tests.fake_ableton import FakeLive, FakeSong

    monkeypatch.setenv(TEST_REPLY_PORT_VARIABLE, "0")  # any free port: the fake replies wherever Segue listens
    with FakeLive(song=FakeSong(tempo=93.5, signature_numerator=7, signature_denominator=8)) as live:
        window.open_settings()
        dialog = window.settings_dialog
        dialog.daw.setCurrentIndex(dialog.daw.findData("ableton"))
        dialog.ableton_port.setValue(live.port)
        dialog.export_dir.setText(str(tmp_path / "Live export"))
        screenshot_widget(dialog, "8-settings")
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
        live.reply_port = window.daw.link.listen_port

        # Live sends the tempo first, then the signature's halves one by one.
        qtbot.waitUntil(lambda: window.form.tempo.value() == pytest.approx(93.5), timeout=10_000)
        qtbot.waitUntil(lambda: window.form.signature.currentText() == "7/8", timeout=10_000)
        assert "Ableton Live" in window.status.daw.text() and "93.5 BPM" in window.status.tempo.text()
        assert load_settings().daw.daw == "ableton" and load_settings().daw.ableton_port == live.port

        [clip] = generate(qtbot, window, "funk bass line", bars=1)
        window.results.select_entry(clip)
        qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: any(track.name == "Segue" for track in live.song.tracks), timeout=10_000)
        qtbot.waitUntil(lambda: clip.used_in_daw)
        assert "Session" in window.activity.text()
        segue_track = next(track for track in live.song.tracks if track.name == "Segue")
        assert segue_track.clip_slots[0] == str(clip.path)
        screenshot(window, "9-following-ableton")

        # With upstream AbletonOSC the clip goes to the export folder chosen in the settings.
        live.patched = False
        qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "export folder" in window.activity.text(), timeout=10_000)
        assert (tmp_path / "Live export" / clip.path.name).read_bytes() == clip.path.read_bytes()
        assert load_settings().folders.export_dir == str(tmp_path / "Live export")


def test_the_panel_remembers_prompts_model_and_takes_between_runs(qtbot, window, engine):
    generate(qtbot, window, "first idea", variations=3)
    generate(qtbot, window, "second idea", variations=3)
    window.close()
    reopened = open_window(qtbot, engine)
    assert reopened.form.history()[:2] == ["second idea", "first idea"]
    assert reopened.form.model.currentData() == "tiny" and reopened.form.variations.value() == 3
    assert reopened.form.prompt.currentText() == ""
    reopened.close()


def test_a_model_that_is_not_downloaded_is_fetched_with_progress_first(qtbot, window, monkeypatch, models_dir):
    import shutil

    from huggingface_hub import constants

    from bridge.engine.musicgen.loading import resolve_checkpoint
    from bridge.models import is_downloaded
    from tests.fake_hub import FakeHub

    repo = "segue-test/panel-tiny"
    files = shutil.copytree(resolve_checkpoint("tiny"), models_dir.parent / "hub-panel-tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub({repo: files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        window.form.select_model(repo)
        type_prompt(qtbot, window, "ambient pad bed")
        set_length(window, 1, "bars")
        window.form.variations.setValue(1)
        downloads = []
        window.downloads.progress.connect(lambda progress, eta: downloads.append(progress))
        with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
            window.generate()
            assert window.cancel_button.isEnabled()
    assert downloads and downloads[-1].stage == "verifying"
    assert any(p.stage == "downloading" and p.bytes_done == p.bytes_total for p in downloads)
    assert is_downloaded(repo)
    assert "✓ downloaded" in window.form.model.currentText()
    [clip] = window.results_model.entries
    assert clip.path.is_file()


def test_continue_from_the_daw_without_a_daw_or_loopback_says_what_to_set_up(qtbot, window):
    window.continue_source.setCurrentIndex(window.continue_source.findData("daw"))
    type_prompt(qtbot, window, "keep the groove")
    qtbot.mouseClick(window.continue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.banner.message != "")
    assert "loopback input" in window.banner.message and not window.engine.busy
    assert window.activity.text() == "Ready"


@pytest.mark.jack
def test_continue_the_last_bar_the_daw_played_through_the_loopback(qtbot, window, jack_server, monkeypatch):
    from bridge.audio.playback import Player
    from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
    from bridge.settings import load_settings
    from tests.fake_ableton import FakeLive, FakeSong

    monkeypatch.setenv(TEST_REPLY_PORT_VARIABLE, "0")
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * np.arange(jack_server.sample_rate) / jack_server.sample_rate)
    with FakeLive(song=FakeSong(tempo=240.0)) as live, Player(jack_server.loopback_device) as daw_output:
        daw_output.play(tone.astype(np.float32)[:, None], jack_server.sample_rate, loop=True)  # the "DAW" plays
        window.open_settings()
        dialog = window.settings_dialog
        dialog.input_device.setCurrentIndex(dialog.input_device.findText(jack_server.loopback_device, Qt.MatchFlag.MatchStartsWith))
        dialog.daw.setCurrentIndex(dialog.daw.findData("ableton"))
        dialog.ableton_port.setValue(live.port)
        dialog.accept()
        live.reply_port = window.daw.link.listen_port
        assert load_settings().audio.input_device.startswith(jack_server.loopback_device)
        qtbot.waitUntil(lambda: window.form.tempo.value() == pytest.approx(240.0), timeout=10_000)
        live.set_song(is_playing=True)
        qtbot.waitUntil(lambda: window.daw.snapshot().playing and window.daw.snapshot().position_beats > 6,
                        timeout=10_000)

        type_prompt(qtbot, window, "keep the groove")
        window.form.variations.setValue(1)
        set_length(window, 1, "bars")
        with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
            window.continue_from_daw(bars=1)
        [clip] = window.results_model.entries
        assert clip.continues is not None and clip.continues.name.startswith("capture-")
        captured, rate = soundfile.read(clip.continues)
        assert len(captured) == rate  # exactly one bar of 4/4 at 240 BPM
        assert abs(captured).max() > 0.1  # the DAW's tone, not silence
        assert clip.bars == pytest.approx(1.0)
        window._show_audio_health()
        assert jack_server.loopback_device in window.status.audio.toolTip()
        screenshot(window, "10-continued-from-daw")


def test_an_unexpected_error_is_one_line_in_the_window_and_a_traceback_in_the_log(window):
    from bridge import paths
    from gui.app import LOG_NAME, error_hook

    try:
        raise RuntimeError("the waveform cache fell over")
    except RuntimeError as error:
        error_hook(window)(type(error), error, error.__traceback__)
    assert window.banner.message.startswith("Something went wrong (RuntimeError: the waveform cache fell over)")
    assert "Traceback" not in window.banner.message
    log_text = (paths.cache_dir() / LOG_NAME).read_text()
    assert "Traceback" in log_text and "the waveform cache fell over" in log_text


def test_loading_a_model_shows_an_eta_from_its_last_load(qtbot, window):
    from bridge.engine.load_times import record_load_seconds

    record_load_seconds("tiny-stereo", "cpu", 30.0)  # as if it took 30 s last time on this machine
    window.form.model.setCurrentIndex(window.form.model.findData("tiny-stereo"))
    type_prompt(qtbot, window, "wide ambient pad")
    set_length(window, 1, "bars")
    seen = []
    window.engine.model_loading.connect(
        lambda job, message, expected: seen.append((expected, window.progress.maximum(), window.progress.format()))
    )
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert seen, "switching to another model loads it"
    expected, maximum, text = seen[0]
    assert expected == 30.0 and maximum == 100 and "ETA 0:" in text
