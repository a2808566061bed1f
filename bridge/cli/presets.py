"""`segue presets` lists the presets; `--preset NAME` for generate, continue and continue-track.

A preset fills in what the command line leaves at its default: the prompt (words you give are added
after the preset's), the guidance and temperature, and for `generate` the length in bars, the
time signature and, without `--bpm`, the middle of the preset's tempo range. An option you give
wins, unless you give it at exactly its default value (argparse cannot tell those apart).
"""

import argparse

from bridge.errors import InvalidParameterError
from bridge.presets import Preset, load_presets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("presets", help="list the presets (use one with --preset NAME)")
    parser.add_argument("--tag", help="only presets with this tag, e.g. drums")
    parser.set_defaults(handler=run_presets)


def run_presets(args: argparse.Namespace) -> int:
    catalogue = load_presets()
    presets = catalogue.with_tag(args.tag) if args.tag else catalogue.presets
    width = max((len(preset.id) for preset in presets), default=0)
    for preset in presets:
        tempo = f"{preset.bpm_range[0]:g}-{preset.bpm_range[1]:g} BPM" if preset.bpm_range else "any tempo"
        origin = "  (yours)" if preset.is_user else ""
        print(f"{preset.id:{width}}  {preset.bars:g} bars {preset.signature}, {tempo}: {preset.name}{origin}")
    for problem in catalogue.problems:
        print(f"skipped: {problem}")
    return 0


def add_preset_option(parser: argparse.ArgumentParser) -> None:
    """Add `--preset` (after the options a preset fills in, whose defaults it remembers)."""
    parser.add_argument("--preset", metavar="NAME", help="start from a preset (see `segue presets`)")
    names = ("cfg", "temperature", "signature")
    parser.set_defaults(preset_defaults={name: parser.get_default(name) for name in names})


def apply_preset(args: argparse.Namespace, lengths: bool) -> Preset | None:
    """Fill `args` from `args.preset` where options hold their defaults; `lengths` for bars and tempo."""
    if not getattr(args, "preset", None):
        return None
    preset = load_presets().get(args.preset)
    defaults = args.preset_defaults
    words = (args.prompt or "").strip()
    args.prompt = f"{preset.prompt}, {words}" if words else preset.prompt
    for name, value in (("cfg", preset.guidance), ("temperature", preset.temperature)):
        if getattr(args, name, None) == defaults.get(name):
            setattr(args, name, value)
    if lengths:
        if args.seconds is None and args.bars is None:
            args.bars = preset.bars
        if args.signature == defaults.get("signature"):
            args.signature = preset.signature
        if args.bpm is None and args.bars is not None:
            if preset.bpm_range is None:
                raise InvalidParameterError(f"preset {preset.id!r} suggests no tempo: give --bpm")
            args.bpm = round((preset.bpm_range[0] + preset.bpm_range[1]) / 2)
    return preset
