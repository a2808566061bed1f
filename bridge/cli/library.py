"""`segue library list|search|show|export|delete|restore|check`: the clip library from a terminal."""

import argparse
import datetime
import json

from bridge.library import Clip, ClipLibrary, ClipQuery
from bridge.library.export import BIT_DEPTHS, export_clip
from bridge.library.integrity import check_library

DEFAULT_EXPORT_RATE = 48000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("library", help="find, export and check the clips you generated")
    actions = parser.add_subparsers(dest="library_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="newest clips first")
    _add_filters(listing)
    listing.set_defaults(handler=run_list)

    search = actions.add_parser("search", help="clips whose name, prompt or tags contain every word")
    search.add_argument("text", nargs="+", help='words to find, e.g. "lofi drums" (prefixes match)')
    _add_filters(search)
    search.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="everything recorded about one clip")
    show.add_argument("clip_id", type=int)
    show.set_defaults(handler=run_show)

    export = actions.add_parser("export", help="write a clip (or its whole chain) as a WAV for the DAW")
    export.add_argument("clip_id", type=int)
    export.add_argument("--chain", action="store_true", help="the clip and every clip it continues, in order")
    export.add_argument("--sample-rate", type=int, default=DEFAULT_EXPORT_RATE,
                        help=f"your session's rate in Hz (default {DEFAULT_EXPORT_RATE})")
    export.add_argument("--bit-depth", type=int, choices=sorted(BIT_DEPTHS), default=24,
                        help="16, 24 (default) or 32 (float)")
    export.add_argument("-o", "--out", help="a folder or a .wav file (default: the exports folder)")
    export.set_defaults(handler=run_export)

    delete = actions.add_parser("delete", help="move clips to Segue's trash (restore brings them back)")
    delete.add_argument("clip_ids", type=int, nargs="+")
    delete.set_defaults(handler=run_delete)

    restore = actions.add_parser("restore", help="bring clips back from the trash")
    restore.add_argument("clip_ids", type=int, nargs="+")
    restore.set_defaults(handler=run_restore)

    check = actions.add_parser("check", help="find and repair clips whose file or record is missing")
    check.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    check.set_defaults(handler=run_check)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="only clips made by this model")
    parser.add_argument("--bpm-min", type=float, help="only clips at this tempo or faster")
    parser.add_argument("--bpm-max", type=float, help="only clips at this tempo or slower")
    parser.add_argument("--kept", action="store_true", help="only clips marked keep")
    parser.add_argument("--tag", help="only clips with this tag")
    parser.add_argument("--trash", action="store_true", help="list the trash instead")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")


def run_list(args: argparse.Namespace) -> int:
    query = ClipQuery(
        text=" ".join(getattr(args, "text", [])),
        model=args.model,
        bpm_min=args.bpm_min,
        bpm_max=args.bpm_max,
        kept_only=args.kept,
        tag=args.tag,
        in_trash=args.trash,
        limit=args.limit,
    )
    with ClipLibrary() as library:
        clips = library.search(query)
        total = library.count(query)
    if not clips:
        print("no clips match" if query.text or total else "no clips yet")
        return 0
    print(f"{'id':>5}  {'created':16}  {'bpm':>5}  {'bars':>4}  {'key':9}  {'length':>6}  {'keep':4}  {'model':24}  title")
    for clip in clips:
        print(_row(clip))
    if total > len(clips):
        print(f"... {total - len(clips)} more (use --limit)")
    return 0


def _row(clip: Clip) -> str:
    created = datetime.datetime.fromtimestamp(clip.created_at).strftime("%Y-%m-%d %H:%M")
    bpm = f"{clip.bpm:g}" if clip.bpm else "-"
    bars = f"{clip.bars:g}" if clip.bars else "-"
    stars = ("*" * clip.rating).ljust(5) if clip.rating else ""
    mark = "K" if clip.kept else " "
    return (
        f"{clip.id:>5}  {created:16}  {bpm:>5}  {bars:>4}  {clip.key or '-':9}  {clip.duration_seconds:>5.1f}s  "
        f"{mark}{stars[:3]:3}  {clip.model[-24:]:24}  {clip.title[:60]}"
    )


def run_show(args: argparse.Namespace) -> int:
    with ClipLibrary() as library:
        clip = library.get(args.clip_id)
        details = clip.metadata(library.parent_uid(clip))
        details |= {"id": clip.id, "status": clip.status, "file": str(clip.file_path),
                    "chain": [c.id for c in library.chain(clip.id)]}
    print(json.dumps(details, indent=2, ensure_ascii=False, default=str))
    return 0


def run_export(args: argparse.Namespace) -> int:
    with ClipLibrary() as library:
        path = export_clip(library, args.clip_id, args.sample_rate, args.bit_depth, args.out, chain=args.chain)
    print(path)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    return _move_clips(args.clip_ids, ClipLibrary.trash, "moved to the trash")


def run_restore(args: argparse.Namespace) -> int:
    return _move_clips(args.clip_ids, ClipLibrary.restore, "restored")


def _move_clips(clip_ids: list[int], move, done: str) -> int:
    with ClipLibrary() as library:
        for clip_id in clip_ids:
            clip = move(library, clip_id)
            print(f"clip {clip.id} {done}: {clip.file_path}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    with ClipLibrary(recover=False) as library:
        report = check_library(library, repair=not args.dry_run)
    for line in report.actions:
        print(line)
    for path in report.unreadable:
        print(f"cannot read {path} as audio (left as it is)")
    print(f"checked {report.clips_checked} clips: " + ("all consistent" if report.clean else
          f"{len(report.actions)} finding(s), {len(report.unreadable)} unreadable file(s)"))
    return 0
