"""`segue vary CLIP "prompt" --strength 0.5`: variations of a clip (audio to audio), written like takes."""

import argparse
from pathlib import Path

from bridge.audio.io import read_audio
from bridge.cli.engine_choice import add_engine_options
from bridge.cli.generate import _run as run_job
from bridge.engine.request import GenerationRequest
from bridge.library import ClipLibrary

DEFAULT_VARY_MODEL = "stabilityai/stable-audio-3-small-music"


def register(subparsers: argparse._SubParsersAction) -> None:
    vary = subparsers.add_parser(
        "vary",
        help="restyle a clip: variations of it steered by a prompt (Stable Audio 3)",
        description="Noises the clip to --strength and lets the model redraw it from there, steered by the "
        "prompt: low strengths keep its rhythm and sound, 1 keeps nothing of it. The variation lasts as long "
        "as the clip.",
    )
    vary.add_argument("clip", help="audio file, or the number of a clip in `segue library`")
    vary.add_argument("prompt", nargs="?", default="", help='how the variation should sound, e.g. "played on a rhodes"')
    vary.add_argument("--strength", type=float, default=0.5, help="how far from the clip, above 0 up to 1 (default 0.5)")
    vary.add_argument("--model", default=DEFAULT_VARY_MODEL, help=f"a Stable Audio 3 model (default {DEFAULT_VARY_MODEL})")
    vary.add_argument("--variations", type=int, default=1, help="number of takes")
    vary.add_argument("--seed", type=int, help="random seed (same seed + same inputs = same audio)")
    vary.add_argument("--bpm", type=float, help="the clip's tempo, put into the prompt the way the model reads it")
    vary.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_engine_options(vary)
    out = vary.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=Path, help="output WAV (takes get -1, -2 ... when several)")
    out.add_argument("--out-dir", type=Path, help="output folder (default: Segue's clip folder)")
    vary.add_argument("--sample-rate", type=int, help="write at this rate (default: the model's)")
    vary.add_argument("--bit-depth", choices=["float", "24", "16"], default="float")
    vary.set_defaults(handler=run_vary)


def clip_path(clip: str) -> str:
    """A file path as given, or the file of library clip number `clip`."""
    if clip.isdigit() and not Path(clip).exists():
        with ClipLibrary() as library:
            return str(library.get(int(clip)).path)
    return str(Path(clip).resolve())


def run_vary(args: argparse.Namespace) -> int:
    path = clip_path(args.clip)
    request = GenerationRequest(
        prompt=args.prompt, model=args.model, bpm=args.bpm, variations=args.variations, seed=args.seed,
        init_audio_path=path, strength=args.strength,
    ).validate()
    read_audio(path)  # fail fast, before starting the engine, on a missing or unreadable file
    return run_job(args, request, include_prompt=False)
