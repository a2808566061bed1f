"""`segue-gui` / `segue gui`: start the control panel.

Unexpected errors are logged with their traceback to the cache folder and shown in the window as
one line; PyQt would otherwise abort the whole application on an exception raised in a slot.

The engine process starts with the spawn method, which first imports this (the main) module again
in the new process: so it imports Qt and the panel only inside main(), and the engine never loads them.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bridge import paths

if TYPE_CHECKING:
    from gui.main_window import MainWindow

LOG_NAME = "panel.log"


def error_hook(window: MainWindow):
    """A sys.excepthook that logs the traceback to panel.log and shows one line in `window`."""
    from PyQt6.QtWidgets import QApplication

    def hook(kind, error, trace) -> None:
        if issubclass(kind, KeyboardInterrupt):
            QApplication.quit()
            return
        log_path = paths.cache_dir() / LOG_NAME
        with open(log_path, "a", encoding="utf-8") as log_file:
            log_file.write("".join(traceback.format_exception(kind, error, trace)) + "\n")
        window.show_error(f"Something went wrong ({kind.__name__}: {error}). Details are in {log_path}.")

    return hook


def main(argv: Sequence[str] | None = None, device: str = "auto") -> int:
    from PyQt6.QtWidgets import QApplication, QMessageBox

    from bridge.errors import SegueError
    from bridge.library import ClipLibrary
    from gui.clip_store import ClipStore
    from gui.engine_controller import EngineController
    from gui.main_window import MainWindow
    from gui.setup_page import open_setup_page
    from gui.theme import apply_theme

    # Warnings from the DAW link, audio and library threads go to the same log as unexpected errors.
    logging.basicConfig(filename=paths.cache_dir() / LOG_NAME, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    sys.excepthook = error_hook(window)
    window.show()
    open_setup_page(window, only_first_time=True)  # `segue doctor`'s checks, the first time the panel opens
    try:
        return app.exec()
    finally:
        window.background.shutdown()
        engine.close()
        library.close()


if __name__ == "__main__":
    sys.exit(main())
