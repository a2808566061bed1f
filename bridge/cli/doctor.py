"""`segue doctor`: check the DAW link, ports, companions, audio, models and engine; print the fixes."""

import argparse
from pathlib import Path

from bridge.setup.doctor import DAW_ANSWER_SECONDS, PROBLEM, run_checks

EXIT_PROBLEMS_FOUND = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check everything a first clip needs; each problem comes with its fix",
        description="Exit status 0 when nothing needs fixing, 1 when something does.",
    )
    parser.add_argument("--daw", choices=["ableton", "reaper", "none"], help="DAW to check (default: the settings')")
    parser.add_argument("--resource-dir", type=Path, metavar="DIR", help="REAPER's resource folder")
    parser.add_argument("--remote-scripts-dir", type=Path, metavar="DIR", help="Live's Remote Scripts folder")
    parser.add_argument("--wait", type=float, default=DAW_ANSWER_SECONDS, metavar="SECONDS",
                        help=f"how long to wait for the DAW to answer (default {DAW_ANSWER_SECONDS:g})")
    parser.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    findings = run_checks(args.daw, args.resource_dir, args.remote_scripts_dir, answer_seconds=max(0.1, args.wait))
    for finding in findings:
        print(finding.line())
    problems = sum(finding.status == PROBLEM for finding in findings)
    print(f"{problems} problem(s) to fix" if problems else "everything Segue needs is in place")
    return EXIT_PROBLEMS_FOUND if problems else 0
