"""`segue continue-track`: Continue my track from the command line, from the DAW or a file."""

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from tqdm import tqdm

from bridge import paths
from bridge.cli.engine_choice import add_engine_options, engine_from_args
from bridge.cli.presets import add_preset_option, apply_preset
from bridge.daw.connect import open_link
from bridge.daw.link import DawLink
from bridge.daw.placement import ROUTE_DRAG_AND_DROP
from bridge.engine.request import DEFAULT_MODEL, QUALITY_MODES
from bridge.errors import DawError, InvalidParameterError
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature
from bridge.settings import load_settings
from bridge.workflow import ContinueMyTrack, ContinueOptions
from bridge.workflow.describe import check_key
from bridge.workflow.loopback import start_player, start_recorder
from bridge.workflow.melody_source import check_takes_melody, following, melody_from_daw
from bridge.workflow.source import END_CHOICES

DAW_WAIT_SECONDS = 5.0
DAW_SOURCES = ("capture", "render")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "continue-track",
        help="continue the last bars of your song, locked to its bars, and put the take back in",
        description="Takes the last --source-bars bars before the DAW's loop end or playhead (captured "
        "from the loopback input, rendered by REAPER, or a file), generates --takes continuations of "
        "--bars bars, fits them to the grid, and places or plays one of them.",
    )
    parser.add_argument("prompt", nargs="?", default="", help="optional words to steer the continuation")
    parser.add_argument(
        "--source", default=None, metavar="capture|render|FILE",
        help="where the bars come from (default: capture with a loopback input, else REAPER's render)",
    )
    parser.add_argument("--source-bars", type=int, default=4, help="bars of your music to continue (default 4)")
    parser.add_argument("--bars", type=int, default=4, help="bars of new material per take (default 4)")
    parser.add_argument("--takes", type=int, default=2, help="how many takes (default 2)")
    parser.add_argument("--end", choices=END_CHOICES, default="auto", help="source ends at the loop end or the playhead")
    parser.add_argument("--daw", choices=["ableton", "reaper", "none"], help="DAW to follow (default: the settings')")
    parser.add_argument("--bpm", type=float, help="tempo of a FILE source (default: the DAW's)")
    parser.add_argument("--signature", help="time signature of a FILE source, e.g. 7/8 (default: the DAW's or 4/4)")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--key", help="key to ask for, e.g. 'A minor'")
    key.add_argument("--accept-key", action="store_true", help="ask for the key Segue estimates from the source")
    parser.add_argument("--place", type=int, metavar="TAKE", help="put take TAKE (1-based) at the bar where the source ends")
    parser.add_argument("--play", type=int, metavar="TAKE", help="play take TAKE live into the loopback on the next bar")
    parser.add_argument("--track", type=int, help="DAW track number to place on (default: a new 'Segue' track)")
    parser.add_argument("--input", help="loopback input the DAW plays into (default: the one chosen in `segue devices`)")
    parser.add_argument("--output", help="loopback output for --play (default: the one chosen in `segue devices`)")
    parser.add_argument("--no-reroll", action="store_true", help="keep takes whose first beat is silent (flagged)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or folder (default {DEFAULT_MODEL})")
    parser.add_argument("--seed", type=int, help="random seed (same seed + same source = same takes)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_engine_options(parser)
    parser.add_argument("--quality", choices=QUALITY_MODES, default="auto")
    parser.add_argument(
        "--melody", metavar="capture|render|FILE",
        help="also follow a melody and its chords (melody models, e.g. facebook/musicgen-melody): an audio file "
        "from a bar line, or the DAW's last --source-bars bars, captured or rendered as --source takes them",
    )
    add_preset_option(parser)
    parser.set_defaults(handler=run_continue_track)


def run_continue_track(args: argparse.Namespace) -> int:
    preset = apply_preset(args, lengths=False)
    options = _options(args)
    if preset is not None:  # the preset's sound settings; the length stays the command line's
        options = dataclasses.replace(options, cfg=preset.guidance, temperature=preset.temperature)
    source_kind = args.source or "auto"
    file_source = source_kind not in ("auto", *DAW_SOURCES)
    daw_melody = args.melody in DAW_SOURCES
    if file_source and not Path(source_kind).is_file():
        raise InvalidParameterError(f"--source is capture, render or an audio file; no file at {source_kind}")
    for value, name in ((args.place, "--place"), (args.play, "--play")):
        if value is not None and not 1 <= value <= args.takes:
            raise InvalidParameterError(f"{name} takes a take number from 1 to {args.takes}, got {value}")
    if args.track is not None and args.track < 1:
        raise InvalidParameterError(f"--track counts from 1, got {args.track}")

    link = _open_link(args)
    recorder = player = session = None
    with contextlib.ExitStack() as resources:  # closed in reverse order: session first, library last
        library = ClipLibrary()
        resources.callback(library.close)
        resources.callback(link.close)
        link.start()
        wants_capture = source_kind == "capture" or (source_kind == "auto" and (args.input or link.name != "reaper"))
        if (wants_capture and not file_source) or args.melody == "capture":
            recorder, warning = start_recorder(args.input, args.output)
            resources.callback(recorder.close)
            if warning:
                print(f"segue: {warning}", file=sys.stderr)
        if args.play is not None:
            player = start_player(args.output)
            resources.callback(player.close)
        bar = tqdm(total=100, unit="%", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)
        engine = engine_from_args(args, on_event=lambda event: session and session.on_engine_event(event))
        resources.callback(engine.close)
        session = ContinueMyTrack(
            engine, link=link, recorder=recorder, player=player, library=library, export_dir=paths.export_dir()
        )
        resources.callback(session.close)
        needs_daw = link.name != "none" and (daw_melody or not (file_source and args.bpm is not None))
        if needs_daw and not link.transport.wait_for(lambda s: s.tempo_and_signature_known, DAW_WAIT_SECONDS):
            raise DawError(f"cannot follow the DAW: {_missing(link)}")

        source = _source(session, args, source_kind, file_source)
        print(f"source: {source.describe()}" + (f"; {source.note}" if source.note else ""))
        if daw_melody:
            melody = melody_from_daw(session, source, args.melody, args.end)
            options = following(options, melody)
            print("melody: the source's own bars" if melody is source else f"melody: {melody.describe()}")
        hints = session.suggest(source)
        if args.accept_key and hints.key is None:
            print("segue: no clear key in the source; continuing without one", file=sys.stderr)
        if args.accept_key:
            options.key = hints.key_text
        elif hints.key is not None and options.key is None:
            print(f"key estimate: {hints.key_text} (ask for it with --accept-key)")
        if hints.tempo is not None and abs(hints.tempo.bpm - source.bpm) > 2:
            print(f"tempo estimate: {hints.tempo.bpm:.1f} BPM (Segue uses {source.bpm:g})")

        def progress(fraction: float) -> None:
            bar.n = round(100 * fraction)
            bar.refresh()

        continuation = session.continue_source(source, options, progress)
        bar.close()
        print(f"text: {continuation.text}")
        for take in continuation.takes:
            flags = f"  [{', '.join(take.flags)}]" if take.flags else ""
            print(f"take {take.index + 1}: {take.path}{flags}")
        if args.place is not None:
            placed = session.place(continuation, args.place - 1, None if args.track is None else args.track - 1)
            print(f"take {args.place}: {placed.message}")
            if placed.route == ROUTE_DRAG_AND_DROP:
                print(placed.path)
        if args.play is not None:
            live = session.play(continuation, args.play - 1)
            bar_number = live.start_beats / source.signature.quarter_notes_per_bar + 1
            print(f"take {args.play}: playing into {player.device.label} from bar {bar_number:g}")
            player.wait()
        return 0


def _missing(link: DawLink) -> str:
    snapshot = link.transport.snapshot()
    if snapshot.connected and snapshot.tempo_bpm and snapshot.signature is None:
        return f"{link.display_name} has not reported its time signature (its tempo is {snapshot.tempo_bpm:g} BPM)"
    return link.describe()


def _options(args: argparse.Namespace) -> ContinueOptions:
    options = ContinueOptions(
        prompt=args.prompt,
        bars=args.bars,
        takes=args.takes,
        key=check_key(args.key) if args.key else None,
        model=args.model,
        seed=args.seed,
        quality=args.quality,
        reroll_silent_start=not args.no_reroll,
    ).check()
    if args.melody is not None:
        check_takes_melody(args.model)
        if args.melody not in DAW_SOURCES:  # a file, read now: a bad one stops before the DAW is asked anything
            options = following(options, args.melody)
    return options


def _open_link(args: argparse.Namespace) -> DawLink:
    choice = load_settings().daw
    if args.daw is not None:
        choice.daw = args.daw
    return open_link(choice)


def _source(session: ContinueMyTrack, args: argparse.Namespace, kind: str, file_source: bool):
    if file_source:
        signature = TimeSignature.parse(args.signature) if args.signature else None
        return session.source_from_file(kind, args.source_bars, args.bpm, signature)
    if kind == "render":
        return session.render(args.source_bars, args.end)
    if kind == "capture":
        return session.capture(args.source_bars, args.end)
    return session.source_from_daw(args.source_bars, args.end)
