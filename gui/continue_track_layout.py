"""How the Continue my track window is laid out: its five numbered steps in a grid, the take lines,
and the small widget makers the steps use. Display only; the window owns the widgets and the workflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout

from bridge.workflow import FittedTake
from gui.controls import muted_label

if TYPE_CHECKING:
    from gui.continue_track import ContinueTrackWindow


def arrange_steps(dialog: ContinueTrackWindow) -> None:
    """Put the window's widgets in place: 1 source, 2 describe, 3 generate, 4 takes, 5 into the song."""
    grid = QGridLayout()
    grid.setHorizontalSpacing(8)
    grid.setVerticalSpacing(6)
    grid.addWidget(section("1 · SOURCE"), 0, 0, 1, 4)
    grid.addWidget(dialog.source_kind, 1, 0, 1, 2)
    grid.addWidget(dialog.source_bars, 1, 2)
    grid.addWidget(dialog.take_button, 1, 3)
    grid.addWidget(dialog.source_info, 2, 0, 1, 3)
    grid.addWidget(dialog.file_bpm, 2, 3)
    grid.addWidget(dialog.seam, 3, 0, 1, 4)
    grid.addWidget(section("2 · DESCRIBE"), 4, 0, 1, 4)
    grid.addWidget(dialog.prompt, 5, 0, 1, 4)
    grid.addWidget(dialog.use_key, 6, 0, 1, 2)
    grid.addWidget(dialog.tempo_info, 6, 2)
    grid.addWidget(dialog.use_tempo, 6, 3)
    describe_tail = QVBoxLayout()
    describe_tail.addWidget(dialog.text_preview)
    describe_tail.addWidget(dialog.melody)
    grid.addLayout(describe_tail, 7, 0, 1, 4)
    grid.addWidget(section("3 · GENERATE"), 8, 0, 1, 4)
    grid.addWidget(dialog.new_bars, 9, 0)
    grid.addWidget(dialog.takes, 9, 1)
    grid.addWidget(dialog.continue_button, 9, 2)
    grid.addWidget(dialog.cancel_button, 9, 3)
    grid.addWidget(dialog.reroll, 10, 0, 1, 2)
    grid.addWidget(dialog.progress, 10, 2, 1, 2)
    grid.addWidget(dialog.listen, 11, 0, 1, 2)
    grid.addWidget(section("4 · TAKES"), 12, 0, 1, 4)
    grid.addWidget(dialog.take_list, 13, 0, 1, 4)
    grid.addWidget(section("5 · INTO THE SONG"), 14, 0, 1, 4)
    actions = QHBoxLayout()
    for button in (dialog.audition_button, dialog.place_button, dialog.play_button, dialog.again_button):
        actions.addWidget(button)
    layout = QVBoxLayout(dialog)
    layout.setContentsMargins(12, 10, 12, 10)
    layout.addLayout(grid)
    layout.addLayout(actions)
    layout.addWidget(dialog.banner)
    layout.addWidget(dialog.status)


def take_line(take: FittedTake, bars: int) -> str:
    difference = take.report.loudness_difference_lu
    loudness = "loudness matched" if abs(difference) <= 1.0 else f"{difference:+.1f} LU from the source"
    return f"Take {take.index + 1}   ·   seed {take.seed}   ·   {bars} bars, exact   ·   {loudness}"


def spin(low: int, high: int, value: int, suffix: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


def wrapped(text: str) -> QLabel:
    return muted_label(text, wrap=True)


def section(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("section")
    return label
