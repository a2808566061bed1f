"""Entry point of the desktop app bundle: the panel without arguments, the `segue` command with them.

    Segue                              opens the panel
    Segue generate "lo-fi drums" ...   any `segue` subcommand
    Segue --panel-screenshot FILE      opens the panel, saves a screenshot after a few seconds, quits
                                       (how the bundle's test sees that the panel really starts)
"""

import multiprocessing
import sys

SCREENSHOT_DELAY_MILLISECONDS = 5000


def main() -> int:
    # The engine runs in a "spawn" child process; in a frozen app that child re-runs this file.
    multiprocessing.freeze_support()
    args = sys.argv[1:]
    if args[:1] == ["--panel-screenshot"] and len(args) == 2:
        return _panel_with_screenshot(args[1])
    if args:
        from bridge.cli import main as cli_main

        return cli_main(args)
    from gui.app import main as panel_main

    return panel_main([])


def _panel_with_screenshot(path: str) -> int:
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from gui.app import main as panel_main
    from gui.main_window import MainWindow

    app = QApplication([sys.argv[0]])

    def grab_and_quit() -> None:
        windows = [widget for widget in app.topLevelWidgets() if isinstance(widget, MainWindow)]
        saved = bool(windows) and windows[0].grab().save(path)
        app.exit(0 if saved else 3)

    QTimer.singleShot(SCREENSHOT_DELAY_MILLISECONDS, grab_and_quit)
    return panel_main([])


if __name__ == "__main__":
    sys.exit(main())
