"""`segue gui`: open the control panel (Qt is imported only when the panel starts)."""

import argparse

from bridge.errors import SegueError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gui", help="open the control panel")
    parser.add_argument("--device", default="auto", help="engine device: auto, cpu, cuda or mps")
    parser.set_defaults(handler=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    try:
        from gui.app import main
    except ImportError as error:  # PyQt6 missing, or Qt's platform libraries (libEGL, libxkbcommon ...)
        raise SegueError(f"the panel cannot start: {error}; reinstall Segue or install Qt's libraries") from None

    return main(["segue"], device=args.device)
