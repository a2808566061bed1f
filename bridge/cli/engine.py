"""`segue engine serve`: the engine for other computers, as a Ray Serve application, until Ctrl-C.

Ray is imported only when this command runs, so `segue` itself never loads it.
"""

import argparse
import importlib.util
import os
import secrets
import signal
import sys

from bridge.cli.engine_choice import TOKEN_ENV
from bridge.engine.request import DEFAULT_MODEL
from bridge.errors import InvalidParameterError, SegueError

LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(subparsers: argparse._SubParsersAction) -> None:
    engine = subparsers.add_parser("engine", help="serve the engine to other computers (Ray Serve)")
    actions = engine.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the engine as a Ray Serve application until Ctrl-C",
        description="Producers point `--engine http://HOST:PORT` (or the panel's Settings) at it. "
        "See the README's 'Remote engine' section.",
    )
    serve.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or folder (default {DEFAULT_MODEL})")
    serve.add_argument("--host", default=LOCALHOST, help="address of the HTTP API (default 127.0.0.1: this computer only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    serve.add_argument("--address", help="join the Ray cluster at this address (default: start Ray here)")
    serve.add_argument("--min-replicas", type=int, default=1, help="replicas kept loaded (default 1)")
    serve.add_argument("--max-replicas", type=int, default=1, help="replicas under load, one GPU each (default 1)")
    serve.add_argument(
        "--token", help=f"token producers must send (default: ${TOKEN_ENV}; generated when --host is given)"
    )
    serve.add_argument(
        "--gpus-per-replica", type=float,
        help="GPU share of each replica (default 1 when the cluster has GPUs; 0.5 puts two small models on one GPU)",
    )
    serve.add_argument("--max-request-mb", type=float, default=64, help="largest request accepted (default 64 MB)")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.min_replicas <= args.max_replicas:
        raise InvalidParameterError("--min-replicas must be at least 1 and at most --max-replicas")
    if not 0 < args.port < 65536:
        raise InvalidParameterError(f"--port must be 1-65535, got {args.port}")
    if importlib.util.find_spec("ray") is None:
        raise SegueError("segue engine serve needs Ray Serve: pip install 'segue[remote]'")
    token = serve_token(args.host, args.token)

    from bridge.engine.remote import cluster
    from bridge.engine.remote.reaper import start_reaper

    started_here = False
    _stop_on_sigterm()
    reaper = start_reaper() if args.address is None else None
    try:
        started_here = cluster.start_ray(args.address)
        _stop_on_sigterm()  # again: ray.init installs its own SIGTERM handler, which just dies
        print(f"loading {args.model} on the engine replicas…", file=sys.stderr, flush=True)
        url = cluster.serve_engine(
            args.model, args.host, args.port, token, args.min_replicas, args.max_replicas,
            int(args.max_request_mb * (1 << 20)), args.gpus_per_replica,
        )
        where = f"on {args.host}:{args.port}, " if args.host != LOCALHOST else ""
        print(f"engine ready {where}at {url} (serving {args.model}); Ctrl-C stops it", flush=True)
        signal.pause() if hasattr(signal, "pause") else _sleep_forever()
    except KeyboardInterrupt:
        print("stopping the engine…", file=sys.stderr, flush=True)
    finally:
        cluster.stop(started_here)
        if reaper is not None:
            reaper.stdin.close()  # the reaper now takes down whatever Ray left behind
            reaper.wait(10)
    return 0


def serve_token(host: str, given: str | None) -> str | None:
    """The token producers must send: given, or $SEGUE_ENGINE_TOKEN; bound wider than 127.0.0.1
    there must be one, so one is generated and printed."""
    token = given or os.environ.get(TOKEN_ENV) or None
    if host != LOCALHOST and token is None:
        token = secrets.token_urlsafe(24)
        print(f"engine token (give it to producers with --engine-token or the panel): {token}", flush=True)
    return token


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`) takes Ray down the way Ctrl-C does."""

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _sleep_forever() -> None:
    import time

    while True:
        time.sleep(3600)
