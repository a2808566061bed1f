"""`segue-gui` / `segue gui`: start the control panel.

Unexpected errors are logged with their traceback to the cache folder and shown in the window as
one line; PyQt would otherwise abort the whole application on an exception raised in a slot.
"""

import logging
import sys
import traceback
from collections.abc import Sequence

from PyQt6.QtWidgets import QApplication, QMessageBox

from bridge import paths
from bridge.errors import SegueError
from bridge.library import ClipLibrary
from gui.clip_store import ClipStore
from gui.engine_controller import EngineController
from gui.main_window import MainWindow
from gui.theme import apply_theme

LOG_NAME = "panel.log"
log = logging.getLogger("segue.gui")


def install_error_hook(window: MainWindow) -> None:
    """Route uncaught exceptions to the log file and a one-line message in `window`."""
    log_path = paths.cache_dir() / LOG_NAME

    def hook(kind, error, trace) -> None:
        if issubclass(kind, KeyboardInterrupt):
            QApplication.quit()
            return
        with open(log_path, "a", encoding="utf-8") as log_file:
            log_file.write("".join(traceback.format_exception(kind, error, trace)) + "\n")
        window.show_error(f"Something went wrong ({kind.__name__}: {error}). Details are in {log_path}.")

    sys.excepthook = hook


def main(argv: Sequence[str] | None = None, device: str = "auto") -> int:
    app = QApplication.instance() or QApplication(list(argv if argv is not None else sys.argv))
    app.setApplicationName("Segue")
    app.setOrganizationName("Segue")
    apply_theme(app)
    try:
        library = ClipLibrary()
    except SegueError as error:
        QMessageBox.critical(None, "Segue", str(error))
        return 2
    engine = EngineController(device=device, store=ClipStore(library))
    window = MainWindow(engine)
    install_error_hook(window)
    window.show()
    try:
        return app.exec()
    finally:
        window.background.shutdown()
        engine.close()
        library.close()


if __name__ == "__main__":
    sys.exit(main())
