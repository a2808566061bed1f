"""A dark, low-glare look that sits next to Ableton Live or REAPER without shouting.

Fusion style plus one palette and a small style sheet: every colour the panel paints comes from
here, so the waveform thumbnails, status bar and buttons stay consistent.
"""

from PyQt6.QtGui import QColor, QFont, QPalette
from PyQt6.QtWidgets import QApplication

WINDOW = "#1f2023"
PANEL = "#27292d"
FIELD = "#16171a"
BORDER = "#3a3d43"
TEXT = "#d9dadc"
MUTED = "#8b9099"
ACCENT = "#f0a23b"  # amber, like a DAW's selected clip
ACCENT_TEXT = "#1b1406"
SELECTION = "#3b4654"
WAVEFORM = "#7fc4d8"
WAVEFORM_SELECTED = "#a9e3f2"
GOOD = "#6cc070"
WARNING = "#e8c547"
ERROR = "#e26060"
ERROR_BACKGROUND = "#3a2224"

STYLE_SHEET = f"""
QWidget {{ font-size: 10pt; }}
QToolTip {{ color: {TEXT}; background: {PANEL}; border: 1px solid {BORDER}; padding: 4px; }}
QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox, QPlainTextEdit {{
    background: {FIELD}; border: 1px solid {BORDER}; border-radius: 3px; padding: 3px 5px;
    selection-background-color: {SELECTION};
}}
QComboBox:focus, QLineEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus {{ border-color: {ACCENT}; }}
QComboBox QAbstractItemView {{ background: {PANEL}; border: 1px solid {BORDER}; selection-background-color: {SELECTION}; }}
QPushButton, QToolButton {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 3px; padding: 4px 10px;
}}
QPushButton:hover, QToolButton:hover {{ border-color: {MUTED}; }}
QPushButton:pressed, QToolButton:pressed, QToolButton:checked {{ background: {SELECTION}; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5b5f66; border-color: #2f3236; }}
QPushButton#primary {{ background: {ACCENT}; color: {ACCENT_TEXT}; border-color: {ACCENT}; font-weight: bold; }}
QPushButton#primary:hover {{ background: #f5b45c; }}
QPushButton#primary:disabled {{ background: #5a4526; color: #8b7a60; border-color: #5a4526; }}
QToolButton#fold {{ border: none; background: transparent; color: {MUTED}; padding: 2px 0; }}
QToolButton#fold:checked {{ background: transparent; color: {TEXT}; }}
QProgressBar {{
    background: {FIELD}; border: 1px solid {BORDER}; border-radius: 3px; text-align: center;
    color: {TEXT}; min-height: 16px; max-height: 16px;
}}
QProgressBar::chunk {{ background: #4f7f95; border-radius: 2px; }}
QListView {{ background: {FIELD}; border: 1px solid {BORDER}; border-radius: 3px; outline: none; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; color: {MUTED}; }}
QStatusBar QLabel {{ padding: 0 6px; }}
QStatusBar::item {{ border: none; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#section {{ color: {MUTED}; font-size: 9pt; font-weight: bold; letter-spacing: 1px; }}
QFrame#banner {{ background: {ERROR_BACKGROUND}; border: 1px solid {ERROR}; border-radius: 3px; }}
QFrame#banner QLabel {{ color: #f3c4c4; }}
QFrame#banner QToolButton {{ border: none; background: transparent; color: #f3c4c4; }}
QFrame#dropZone {{ border: 2px dashed {ACCENT}; border-radius: 6px; }}
QGroupBox {{ border: 1px solid {BORDER}; border-radius: 3px; margin-top: 14px; padding-top: 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; color: {MUTED}; }}
QDialog, QMainWindow {{ background: {WINDOW}; }}
"""


def apply_theme(app: QApplication) -> None:
    """Fusion + dark palette + style sheet, on the whole application."""
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: WINDOW,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: FIELD,
        QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: PANEL,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: SELECTION,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: PANEL,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.BrightText: ERROR,
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5b5f66"))
    app.setPalette(palette)
    font = QFont(app.font())  # the platform's UI font, at a size that reads at arm's length
    font.setPointSizeF(10.0)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
