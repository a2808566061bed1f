"""Small widget makers every panel window shares, so the same control looks the same everywhere."""

from PyQt6.QtWidgets import QLabel, QPushButton


def push_button(text: str, tip: str, primary: bool = False) -> QPushButton:
    """A button with a tooltip; `primary` gives it the accent colour (one per window)."""
    button = QPushButton(text)
    button.setToolTip(tip)
    if primary:
        button.setObjectName("primary")
    return button


def muted_label(text: str, wrap: bool = False) -> QLabel:
    """Secondary text in the muted colour."""
    label = QLabel(text)
    label.setObjectName("muted")
    label.setWordWrap(wrap)
    return label
