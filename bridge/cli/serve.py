"""`segue serve`: the engine, the DAW link and Segue's OSC control API, headless, until Ctrl-C."""

import argparse
import contextlib
import signal
import sys
import threading

from bridge import paths
from bridge.cli.engine_choice import add_engine_options, engine_from_args
from bridge.daw import ableton, control_server, reaper
from bridge.daw.link import DawLink, NoDawLink
from bridge.daw.osc_link import LOCALHOST
from bridge.daw.transport import TransportSnapshot
from bridge.engine.request import DEFAULT_MODEL
from bridge.errors import InvalidParameterError
from bridge.library import ClipLibrary
from bridge.workflow import ContinueMyTrack
from bridge.workflow.loopback import start_player, start_recorder


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run headless: engine, DAW link and the /segue/* OSC control API",
        description="Drive Segue from a DAW controller, Max for Live, TouchOSC or a script over OSC. "
        "See the README's 'OSC control API' section for the messages.",
    )
    serve.add_argument(
        "--daw",
        choices=["ableton", "reaper", "none"],
        default="none",
        help="DAW to follow and place clips into (default: none)",
    )
    serve.add_argument(
        "--host",
        default=LOCALHOST,
        help="address the control API listens on (default 127.0.0.1: this computer only)",
    )
    serve.add_argument(
        "--osc-port",
        type=_port,
        default=control_server.CONTROL_PORT,
        help=f"control API port (default {control_server.CONTROL_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--reply-port",
        type=_port,
        default=control_server.REPLY_PORT,
        help=f"replies go to the sender's address at this port (default {control_server.REPLY_PORT})",
    )
    serve.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or folder (default {DEFAULT_MODEL})")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_engine_options(serve)
    live = serve.add_argument_group("Ableton Live (AbletonOSC)")
    live.add_argument(
        "--ableton-port",
        type=_port,
        default=ableton.LIVE_PORT,
        help=f"AbletonOSC's port (default {ableton.LIVE_PORT})",
    )
    # AbletonOSC always replies to 11001: the option stays only to say so to scripts that pass it.
    live.add_argument("--ableton-reply-port", type=_ableton_reply_port, help=argparse.SUPPRESS)
    daw = serve.add_argument_group("REAPER (native OSC + Segue's scripts, packaging/reaper/INSTALL.md)")
    daw.add_argument(
        "--reaper-port",
        type=_port,
        default=reaper.REAPER_PORT,
        help=f"REAPER's local listen port (default {reaper.REAPER_PORT})",
    )
    daw.add_argument(
        "--reaper-listen-port",
        type=_port,
        default=reaper.FEEDBACK_PORT,
        help=f"REAPER's device port, where Segue listens (default {reaper.FEEDBACK_PORT})",
    )
    daw.add_argument(
        "--reaper-insert-action", default=reaper.INSERT_ACTION, help="command id of Segue_insert_clip.lua"
    )
    daw.add_argument(
        "--reaper-render-action",
        default=reaper.RENDER_ACTION,
        help="command id of Segue_render_selection.lua",
    )
    daw.add_argument(
        "--reaper-info-action", default=reaper.INFO_ACTION, help="command id of Segue_project_info.lua"
    )
    audio = serve.add_argument_group("loopback audio (Continue my track: capture the DAW, play takes into it)")
    audio.add_argument("--input", help="loopback input the DAW plays into (part of its name; `segue devices` lists them)")
    audio.add_argument("--output", help="loopback output the DAW records from, for live play")
    audio.add_argument(
        "--loopback", action="store_true", help="use the input and output chosen with `segue devices`"
    )
    serve.set_defaults(handler=run_serve)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a whole number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, not {port}")
    return port


def _ableton_reply_port(text: str) -> int:
    try:
        return ableton.check_reply_port(_port(text))
    except InvalidParameterError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def make_link(args: argparse.Namespace) -> DawLink:
    if args.daw == "ableton":
        return ableton.AbletonLink(live_port=args.ableton_port, listen_port=ableton.reply_port())
    if args.daw == "reaper":
        return reaper.ReaperLink(
            reaper_port=args.reaper_port,
            listen_port=args.reaper_listen_port,
            insert_action=args.reaper_insert_action,
            render_action=args.reaper_render_action,
            info_action=args.reaper_info_action,
        )
    return NoDawLink()


def run_serve(args: argparse.Namespace) -> int:
    if args.host in ("localhost", ""):
        raise InvalidParameterError(
            "give --host as an IP address, e.g. 127.0.0.1 ('localhost' may mean IPv6)"
        )
    link = make_link(args)
    server: control_server.ControlServer | None = None
    stop = threading.Event()
    with contextlib.ExitStack() as resources:  # closed in reverse order: server first, link last
        resources.callback(link.close)
        recorder = player = None
        if args.input or args.loopback:
            recorder, warning = start_recorder(args.input, args.output)
            resources.callback(recorder.close)
            if warning:
                print(f"segue serve: {warning}", file=sys.stderr)
        if args.output or args.loopback:
            player = start_player(args.output)
            resources.callback(player.close)
        library = ClipLibrary()  # every take is recorded, as `segue generate` does
        resources.callback(library.close)
        engine = engine_from_args(args, on_event=lambda event: server and server.on_engine_event(event))
        resources.callback(engine.close)
        session = ContinueMyTrack(
            engine, link=link, recorder=recorder, player=player, library=library, export_dir=paths.export_dir()
        )
        resources.callback(session.close)
        server = control_server.ControlServer(
            engine, link, model=args.model, host=args.host, port=args.osc_port, reply_port=args.reply_port,
            library=library, workflow=session,
        )
        resources.callback(server.close)
        link.start()
        server.start()
        link.transport.add_listener(_ConnectionReporter(link.display_name))
        print(
            f"segue serve: OSC control on {server.host}:{server.port}, replies to the sender at port "
            f"{server.reply_port}; DAW: {link.describe()}; model {args.model}. Ctrl-C stops.",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("segue serve: stopped", file=sys.stderr)
        return 0


class _ConnectionReporter:
    """Tells the terminal when the DAW comes and goes (one line each time)."""

    def __init__(self, daw_name: str) -> None:
        self._daw_name = daw_name
        self._connected = False

    def __call__(self, snapshot: TransportSnapshot) -> None:
        if snapshot.connected == self._connected:
            return
        self._connected = snapshot.connected
        if snapshot.connected:
            print(f"segue serve: {self._daw_name} connected", file=sys.stderr, flush=True)
        else:
            print(
                f"segue serve: {self._daw_name} stopped answering; waiting for it",
                file=sys.stderr,
                flush=True,
            )
