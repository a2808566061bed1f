"""`segue setup ableton|reaper`: install (or `--uninstall`) Segue's companions in the DAW's folders."""

import argparse
import re
from pathlib import Path

from bridge.errors import InvalidParameterError
from bridge.setup import ableton, changes, reaper
from bridge.setup.abletonosc import PINNED_COMMIT, PINNED_TREE_SHA256
from bridge.setup.locations import find_reaper_resource_dir, find_remote_scripts_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "setup",
        help="install what Segue needs in Ableton Live or REAPER (--uninstall puts it all back)",
        description="Finds the DAW's folders, backs up every file it changes, and prints the one step "
        "left to do in the DAW. A second run changes nothing; --uninstall restores what was there.",
    )
    parser.add_argument("daw", choices=["ableton", "reaper"])
    parser.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    parser.add_argument("--uninstall", action="store_true", help="take Segue's files out again")
    parser.add_argument("--remote-scripts-dir", metavar="DIR", help="Live's Remote Scripts folder")
    parser.add_argument("--resource-dir", metavar="DIR", help="REAPER's resource folder (portable: its folder)")
    parser.add_argument(
        "--abletonosc-zip", metavar="FILE", type=Path,
        help=f"AbletonOSC's zip, downloaded beforehand (github.com/ideoforms/AbletonOSC/archive/{PINNED_COMMIT}.zip)",
    )
    parser.add_argument(
        "--abletonosc-sha256", metavar="HEX", default=PINNED_TREE_SHA256,
        help="accept another AbletonOSC build whose tree hash you checked yourself (see bridge/setup/abletonosc.py)",
    )
    parser.set_defaults(handler=run_setup)


def run_setup(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[0-9a-f]{64}", args.abletonosc_sha256):
        raise InvalidParameterError("--abletonosc-sha256 must be 64 lower-case hex digits")
    if args.daw == "reaper":
        root = find_reaper_resource_dir(args.resource_dir)
        if not args.dry_run:
            reaper.refuse_while_running()
        daw_name = "REAPER"
    else:
        root = find_remote_scripts_dir(args.remote_scripts_dir)
        daw_name = "Live"
    print(f"{daw_name}: {root}")
    if args.uninstall:
        return _uninstall(args.daw, root, args.dry_run)
    plan = (
        reaper.build_plan(root)
        if args.daw == "reaper"
        else ableton.build_plan(root, args.abletonosc_zip, args.abletonosc_sha256)
    )
    steps = changes.pending_steps(plan) if args.dry_run else changes.apply(plan)
    _print_steps(steps, args.dry_run, f"Segue's {daw_name} files are installed and current")
    if args.daw == "reaper":
        print(reaper.step_left(root))
    else:
        print(ableton.step_left(ableton.live_is_running()))
    return 0


def _uninstall(daw: str, root: Path, dry_run: bool) -> int:
    if not changes.is_installed(daw, root):
        print(f"Segue has installed nothing in {root}")
        return 0
    steps = changes.uninstall_steps(daw, root) if dry_run else changes.uninstall(daw, root)
    _print_steps(steps, dry_run, "everything was already as before Segue")
    return 0


def _print_steps(steps: list[changes.Step], dry_run: bool, when_none: str) -> None:
    if not steps:
        print(f"nothing to change: {when_none}")
        return
    print("would do (dry run, nothing changed):" if dry_run else "done (originals backed up in Segue's data folder):")
    for step in steps:
        print(f"  {step}")
