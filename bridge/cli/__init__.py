"""The `segue` command: one module per subcommand, each with `register(subparsers)`.

Errors a producer can cause end with exit code 2 and one line on stderr, never a traceback.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.errors import SegueError

# Subcommand modules, in the order `segue --help` lists them.
SUBCOMMANDS = [
    "generate", "continue_track", "models", "library", "serve", "gui", "devices", "engine", "setup", "presets", "doctor", "vary",
]

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segue", description="Local MusicGen clips locked to your DAW's tempo and bars."
    )
    parser.add_argument("--version", action="version", version=f"segue {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"bridge.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SegueError as error:
        print(f"segue: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("segue: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
