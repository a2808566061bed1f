"""`--engine URL` and `--engine-token` for the commands that generate (generate, continue,
continue-track, serve): this computer's engine, or `segue engine serve` somewhere else.

Without `--engine`, the engine chosen in the panel's settings is used; `--engine local` forces this
computer. The token comes from `--engine-token`, else $SEGUE_ENGINE_TOKEN, else the one the panel
stored for that URL.
"""

import argparse
import os
import sys
from collections.abc import Callable

from bridge.engine.connect import LOCAL, configured_remote, open_engine
from bridge.engine.events import EngineEvent
from bridge.engine.families import missing_checkpoint
from bridge.errors import InvalidParameterError, ModelError
from bridge.settings import load_settings

TOKEN_ENV = "SEGUE_ENGINE_TOKEN"


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine", metavar="URL",
        help="run on the remote engine at URL (`segue engine serve`), or 'local' (default: the panel's choice)",
    )
    parser.add_argument("--engine-token", help=f"the remote engine's token (default: ${TOKEN_ENV} or the stored one)")


def engine_from_args(args: argparse.Namespace, on_event: Callable[[EngineEvent], None] | None = None):
    """The engine client the command's options (or the settings) ask for, started.

    A model this computer must download first is refused here, before a local engine starts (seconds
    of loading torch for one line); a remote engine has models of its own."""
    url, stored_token = None, None
    if args.engine is None:
        url, stored_token = configured_remote(load_settings())
    elif args.engine != LOCAL:
        url = args.engine
        if not url.startswith(("http://", "https://")):
            raise InvalidParameterError(f"--engine takes an http:// or https:// URL, or 'local'; got {url!r}")
        from bridge.engine.remote.token_store import load_token

        stored_token = load_token(url)
    if url is None:
        missing = missing_checkpoint(args.model)
        if missing is not None:
            raise ModelError(missing)
        return open_engine(args.device, on_event)
    print(f"engine: {url}", file=sys.stderr)
    token = args.engine_token or os.environ.get(TOKEN_ENV) or stored_token
    return open_engine(on_event=on_event, remote_url=url, token=token)
