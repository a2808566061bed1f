"""Settings' Engine box: generate on this computer, or on a remote engine (`segue engine serve`).

The URL goes to settings.json; the token to the OS keyring or a file only the user can read
(bridge.engine.remote.token_store), when the dialog's OK saves. "Test connection" asks the remote
for its model and devices in the background and shows the answer, or why it failed, in one line.
"""

from PyQt6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit, QWidget

from bridge.engine.remote.token_store import load_token, save_token
from bridge.settings import Settings
from gui.background import Background
from gui.controls import muted_label, push_button

ENGINE_LABELS = (("local", "This computer"), ("remote", "Remote engine (segue engine serve)"))


class EngineSettingsBox(QGroupBox):
    def __init__(self, settings: Settings, background: Background, parent: QWidget | None = None) -> None:
        super().__init__("Engine", parent)
        self._background = background
        self.kind = QComboBox()
        for value, label in ENGINE_LABELS:
            self.kind.addItem(label, value)
        self.kind.setCurrentIndex(max(0, self.kind.findData(settings.engine.kind)))
        self.url = QLineEdit(settings.engine.remote_url or "")
        self.url.setPlaceholderText("http://gpu-box.local:8000")
        url = self.url.text().strip()
        self.token = QLineEdit((load_token(url) or "") if url else "")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("the token `segue engine serve` printed (none on 127.0.0.1)")
        self.test_button = push_button("Test connection", "Ask the remote engine for its model and devices")
        self.test_button.clicked.connect(self.test_connection)
        self.status = muted_label("", wrap=True)

        form = QFormLayout(self)
        form.addRow("Generate on", self.kind)
        form.addRow("URL", self.url)
        form.addRow("Token", self.token)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.status, 1)
        form.addRow(test_row)
        self.kind.currentIndexChanged.connect(self._show_kind)
        self._show_kind()

    def apply(self, settings: Settings) -> None:
        """Write the choice into `settings` and keep the token (called when the dialog's OK is pressed)."""
        settings.engine.kind = self.kind.currentData()
        settings.engine.remote_url = self.url.text().strip() or None
        if settings.engine.remote_url:
            save_token(settings.engine.remote_url, self.token.text().strip() or None)

    def test_connection(self) -> None:
        url, token = self.url.text().strip(), self.token.text().strip() or None
        if not url.startswith(("http://", "https://")):
            self.status.setText("Give the engine's URL, e.g. http://gpu-box.local:8000")
            return
        self.test_button.setEnabled(False)
        self.status.setText(f"Asking {url}…")
        self._background.run(lambda: _probe(url, token), self._tested, self._test_failed)

    def _tested(self, info: dict) -> None:
        self.test_button.setEnabled(True)
        resources = ", ".join(f"{count:g} {name}" for name, count in sorted(info.get("cluster_resources", {}).items()))
        self.status.setText(
            f"Connected: {', '.join(info.get('models', []))} ({info.get('family')}) on {info.get('device')}; "
            f"cluster {resources or 'unknown'}"
        )

    def _test_failed(self, message: str) -> None:
        self.test_button.setEnabled(True)
        self.status.setText(message[:1].upper() + message[1:])

    def _show_kind(self) -> None:
        remote = self.kind.currentData() == "remote"
        for widget in (self.url, self.token, self.test_button):
            widget.setEnabled(remote)


def _probe(url: str, token: str | None) -> dict:
    from bridge.engine.remote.client import RemoteEngineClient

    with RemoteEngineClient(url, token) as client:
        return client.info()
