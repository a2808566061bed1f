"""The Setup page: `segue doctor`'s checks in the panel, opened by itself the first time the panel runs.

The checks run off the Qt thread (the DAW and audio checks can take seconds). The DAW is checked
through the panel's own link rather than a second one, which could not bind the same port.
"""

from collections.abc import Callable

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDialog, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from bridge import paths
from bridge.daw.link import DawLink
from bridge.setup.doctor import INFO, OK, PROBLEM, Finding, link_findings, run_checks
from gui.background import Background
from gui.controls import muted_label, push_button

SEEN_MARKER = "setup-page-seen"
MARKS = {OK: ("✓", "#4caf50"), PROBLEM: ("!", "#e0603a"), INFO: ("·", "#9aa0a6")}


class SetupPage(QDialog):
    """A list of findings, a "Check again" button and the one-line fix under each problem."""

    def __init__(self, background: Background, current_link: Callable[[], DawLink], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Segue Setup")
        self.background = background
        self.current_link = current_link
        self.findings: list[Finding] = []
        title = QLabel("SETUP")
        title.setObjectName("section")
        self.summary = muted_label("Checking…", wrap=True)
        self.rows = QVBoxLayout()
        self.rows.setSpacing(6)
        rows_widget = QWidget()
        rows_widget.setLayout(self.rows)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(rows_widget)
        self.check_button = push_button("Check again", "Run every check again (like `segue doctor`)")
        self.check_button.clicked.connect(self.check)
        close_button = push_button("Close", "Close; Settings (⚙) and `segue doctor` check again any time", primary=True)
        close_button.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.summary)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.resize(640, 520)

    def check(self) -> None:
        self.check_button.setEnabled(False)
        self.summary.setText("Checking the DAW, ports, companions, audio, models and engine…")
        link = self.current_link()
        self.background.run(lambda: link_findings(link) + run_checks(check_link=False), self._show, self._failed)

    def _show(self, findings: list[Finding]) -> None:
        self.findings = findings
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for finding in findings:
            self.rows.addWidget(_finding_row(finding))
        self.rows.addStretch(1)
        problems = sum(finding.status == PROBLEM for finding in findings)
        self.summary.setText(
            f"{problems} thing(s) to fix before the first clip lands in your DAW." if problems
            else "Everything Segue needs is in place."
        )
        self.check_button.setEnabled(True)

    def _failed(self, message: str) -> None:
        self.summary.setText(message)
        self.check_button.setEnabled(True)


def _finding_row(finding: Finding) -> QWidget:
    mark, colour = MARKS[finding.status]
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    badge = QLabel(mark)
    badge.setFixedWidth(16)
    badge.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
    badge.setStyleSheet(f"color: {colour}; font-weight: bold;")
    text = QLabel(f"<b>{finding.topic}</b>  {_escape(finding.message)}"
                  + (f"<br><span style='color:#9aa0a6'>Fix: {_escape(finding.fix)}</span>" if finding.fix else ""))
    text.setWordWrap(True)
    text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # fixes are commands to copy
    layout.addWidget(badge)
    layout.addWidget(text, 1)
    return row


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def first_time() -> bool:
    """True until the Setup page has been shown once (a marker file in Segue's config folder)."""
    return not (paths.config_dir() / SEEN_MARKER).exists()


def open_setup_page(window, only_first_time: bool = False) -> SetupPage | None:
    """Show the Setup page over `window` (a MainWindow); with `only_first_time`, only on the first run."""
    if only_first_time and not first_time():
        return None
    (paths.config_dir() / SEEN_MARKER).touch()
    page = SetupPage(window.background, lambda: window.daw.link, window)
    window.setup_page = page
    page.show()
    page.check()
    return page
