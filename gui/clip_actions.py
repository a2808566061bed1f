"""What the producer does with a clip in the results: audition, A/B switch, loop, keep, rename, discard,
send to the DAW, drag out (marks it used) — the row of clip buttons and their slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject
from PyQt6.QtWidgets import QHBoxLayout

from bridge.daw.placement import PlacedClip
from gui.clip_store import ClipEntry
from gui.controls import push_button as _button

if TYPE_CHECKING:
    from gui.main_window import MainWindow


class ClipActions(QObject):
    """Owns the clip buttons under the results list and acts on the selected (or playing) clip."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)  # a child: its connections end with the window
        self.window = window
        self.play_button = _button("▶ Play", "Audition the selected clip through the output device (Space, Ctrl+P)")
        self.ab_button = _button("A/B", "Switch to the other take of the same batch, at the same beat (Tab)")
        self.loop_button = _button("Loop", "Loop auditions")
        self.loop_button.setCheckable(True)
        self.loop_button.setChecked(window.auditioner.loop)
        self.keep_button = _button("☆ Keep", "Mark the selected clip as a keeper, or unmark it (K)")
        self.rename_button = _button("Rename", "Rename the selected clip (F2)")
        self.discard_button = _button("Discard", "Move the selected clip to Segue's trash (Delete)")
        self.send_button = _button("Send to DAW", "Place the selected clip in the DAW through the DAW link")
        self.play_button.clicked.connect(self.audition_selected)
        self.ab_button.clicked.connect(self.switch_take)
        self.loop_button.toggled.connect(self._set_loop)
        self.keep_button.clicked.connect(self.toggle_keep)
        self.rename_button.clicked.connect(self.rename_selected)
        self.discard_button.clicked.connect(self.discard_selected)
        self.send_button.clicked.connect(self.send_to_daw)

    def row(self) -> QHBoxLayout:
        clip_actions = QHBoxLayout()
        clip_actions.setSpacing(6)
        for widget in (self.play_button, self.ab_button, self.loop_button):
            clip_actions.addWidget(widget)
        clip_actions.addSpacing(10)
        for widget in (self.keep_button, self.rename_button, self.discard_button):
            clip_actions.addWidget(widget)
        clip_actions.addStretch(1)
        clip_actions.addWidget(self.send_button)
        return clip_actions

    def connect_signals(self) -> None:
        window = self.window
        window.results_model.rename_requested.connect(self.rename)
        window.results.drag_started.connect(self._mark_dragged)
        window.results.command.connect(self._list_command)
        window.results.clicked.connect(lambda index: self.audition_selected())
        window.auditioner.started.connect(self._audition_changed)
        window.auditioner.stopped.connect(self._audition_changed)

    def update_buttons(self) -> None:
        selected = self.window.results.selected_entry()
        has_clip = selected is not None
        self.keep_button.setText("★ Kept" if selected is not None and selected.kept else "☆ Keep")
        for button in (self.play_button, self.rename_button, self.discard_button, self.keep_button,
                       self.send_button, self.ab_button):
            button.setEnabled(has_clip)

    def audition(self, entry: ClipEntry | None) -> None:
        """Play `entry` (stop it if it is the one playing) through the chosen output device."""
        if entry is not None:
            self.window._guard(lambda: self.window.auditioner.toggle(entry))

    def audition_selected(self) -> None:
        self.audition(self.window.results.selected_entry())

    def switch_take(self) -> None:
        """A/B: the next take of the same batch, from the same beat."""
        window = self.window
        current = window.auditioner.playing or window.results.selected_entry()
        if current is None:
            return
        takes = window.results_model.siblings(current)
        following = takes[(takes.index(current) + 1) % len(takes)] if current in takes else current
        window.results.select_entry(following)
        window._guard(lambda: window.auditioner.switch_to(following))

    def _set_loop(self, loop: bool) -> None:
        self.window.auditioner.loop = loop

    def _audition_changed(self, *_args) -> None:
        window = self.window
        window.results_model.set_playing(window.auditioner.playing)
        self.play_button.setText("■ Stop" if window.auditioner.playing else "▶ Play")
        window.wiring.show_audio_health()

    def toggle_keep(self) -> None:
        window = self.window
        entry = window.results.selected_entry()
        if entry is not None:
            window._guard(lambda: window.engine.store.set_kept(entry, not entry.kept))
            window.results_model.refresh(entry)
            window._update_buttons()

    def rename_selected(self) -> None:
        index = self.window.results.currentIndex()
        if index.isValid():
            self.window.results.edit(index)

    def rename(self, entry: ClipEntry, name: str) -> None:
        self.window._guard(lambda: self.window.engine.store.rename(entry, name))
        self.window.results_model.refresh(entry)

    def discard_selected(self) -> None:
        window = self.window
        entry = window.results.selected_entry()
        if entry is None:
            return
        if window.auditioner.playing is entry:
            window.auditioner.stop()
        trashed = window._guard(lambda: window.engine.store.discard(entry))
        if trashed is None:
            return
        window.results_model.remove(entry)
        if trashed:
            note = f"{entry.name} is in Segue's trash (segue library restore {entry.clip_id})"
        else:
            note = f"{entry.name} left the list; its file stays because your DAW may use it"
        window.note(note)
        window._update_buttons()

    def send_to_daw(self) -> None:
        window = self.window
        entry = window.results.selected_entry()
        if entry is None:
            return
        self.send_button.setEnabled(False)

        def placed(result: PlacedClip) -> None:
            entry.used_in_daw = entry.used_in_daw or result.in_project
            window.note(result.message)
            window._update_buttons()

        def failed(message: str) -> None:
            window.show_error(message)
            window._update_buttons()

        window.daw.send(entry.path, placed, failed)

    def _list_command(self, command: str) -> None:
        actions = {
            "keep": self.toggle_keep,
            "discard": self.discard_selected,
            "audition": self.audition_selected,
            "switch": self.switch_take,
        }
        actions[command]()

    def load_recent_clips(self) -> None:
        """Show the library's newest clips below anything generated meanwhile (read off the Qt thread)."""
        window = self.window
        window.background.run(window.engine.store.recent, self._recent_loaded, window.show_error)

    def _recent_loaded(self, entries: list[ClipEntry]) -> None:
        shown = {entry.clip_id for entry in self.window.results_model.entries}
        self.window.results_model.add([entry for entry in entries if entry.clip_id not in shown], at_end=True)
        self.window._update_buttons()

    def _mark_dragged(self, _drag) -> None:
        entry = self.window.results.selected_entry()
        if entry is not None:
            entry.used_in_daw = True
