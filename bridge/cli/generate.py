"""`segue generate` and `segue continue`: one job through the engine process, clips written to disk."""

import argparse
import sys
from pathlib import Path

from bridge import paths
from bridge.audio.io import read_audio
from bridge.cli.engine_choice import add_engine_options, engine_from_args
from bridge.cli.job_status import JobStatusLine
from bridge.cli.presets import add_preset_option, apply_preset
from bridge.engine.catalog import known_to_take_no_melody, no_melody_message
from bridge.engine.melody_timeline import read_melody_file
from bridge.engine.request import DEFAULT_MODEL, QUALITY_MODES, GenerationRequest
from bridge.errors import InvalidParameterError
from bridge.library import ClipLibrary
from bridge.workflow.loop import loop_request, loop_takes


def register(subparsers: argparse._SubParsersAction) -> None:
    generate = subparsers.add_parser("generate", help="make clips from a text prompt")
    generate.add_argument("prompt", nargs="?", default="", help='what to play, e.g. "lo-fi hip-hop drums, dusty, 90 bpm"')
    _add_common_options(generate)
    generate.add_argument("--loop", action="store_true", help="a seamless loop of exactly --bars bars (needs --bpm)")
    generate.set_defaults(handler=run_generate)

    continue_ = subparsers.add_parser("continue", help="continue an audio file")
    continue_.add_argument("input", help="audio file to continue (any format soundfile reads)")
    continue_.add_argument("prompt", nargs="?", default="", help="optional text to steer the continuation")
    window = continue_.add_mutually_exclusive_group()
    window.add_argument("--prompt-seconds", type=float, help="use the last N seconds of the input (default 10)")
    window.add_argument("--prompt-bars", type=float, help="use the last N bars of the input (needs --bpm)")
    continue_.add_argument(
        "--include-prompt", action="store_true", help="write prompt + continuation in one file"
    )
    _add_common_options(continue_)
    continue_.set_defaults(handler=run_continue)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or folder (default {DEFAULT_MODEL}; 'tiny' for a test model)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length of the new material in seconds (default 8)")
    length.add_argument("--bars", type=float, help="length in bars (needs --bpm)")
    parser.add_argument("--bpm", type=float, help="tempo in quarter notes per minute")
    parser.add_argument("--signature", default="4/4", help="time signature, e.g. 4/4 or 7/8 (default 4/4)")
    parser.add_argument("--variations", type=int, default=1, help="number of takes, generated in one batch")
    parser.add_argument("--seed", type=int, help="random seed (same seed + same inputs = same audio)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=250)
    parser.add_argument("--top-p", type=float, default=0.0)
    parser.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance (default 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_engine_options(parser)
    parser.add_argument("--quality", choices=QUALITY_MODES, default="auto", help="exact or fast (default: fast on CPU)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=Path, help="output WAV (takes get -1, -2 ... when several)")
    out.add_argument("--out-dir", type=Path, help="output folder (default: Segue's clip folder)")
    parser.add_argument("--sample-rate", type=int, help="write at this rate (default: the model's, 32000; AudioGen 16000)")
    parser.add_argument("--bit-depth", choices=["float", "24", "16"], default="float")
    parser.add_argument(
        "--melody", type=Path, metavar="FILE",
        help="audio whose melody and chords to follow, from a bar line (melody models, e.g. facebook/musicgen-melody)",
    )
    add_preset_option(parser)


def _request(args: argparse.Namespace, **extra) -> GenerationRequest:
    apply_preset(args, lengths=True)
    if args.melody is not None:
        if known_to_take_no_melody(args.model):  # a catalogued model: no need to start the engine to know
            raise InvalidParameterError(no_melody_message(args.model))
        read_melody_file(args.melody)  # fail fast, before starting the engine, on a missing or unreadable file
        extra["melody_path"] = str(args.melody.resolve())
    return GenerationRequest(
        prompt=args.prompt,
        model=args.model,
        seconds=args.seconds,
        bars=args.bars,
        bpm=args.bpm,
        signature=args.signature,
        variations=args.variations,
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        cfg=args.cfg,
        quality=args.quality,
        **extra,
    ).validate()


def run_generate(args: argparse.Namespace) -> int:
    request = _request(args)
    if not request.prompt.strip():
        raise InvalidParameterError("say what to play: a prompt, or --preset NAME (see `segue presets`)")
    if args.loop:
        return _run(args, loop_request(request), include_prompt=False, loop_of=request)
    return _run(args, request, include_prompt=False)


def run_continue(args: argparse.Namespace) -> int:
    read_audio(args.input)  # fail fast, before starting the engine, on a missing or unreadable file
    prompt_seconds = args.prompt_seconds if args.prompt_seconds is not None else (None if args.prompt_bars else 10.0)
    request = _request(
        args, audio_path=str(Path(args.input).resolve()), prompt_seconds=prompt_seconds, prompt_bars=args.prompt_bars
    )
    return _run(args, request, include_prompt=args.include_prompt)


def _run(args: argparse.Namespace, request: GenerationRequest, include_prompt: bool, loop_of: GenerationRequest | None = None) -> int:
    if args.sample_rate is not None and not 8000 <= args.sample_rate <= 384000:
        raise InvalidParameterError(f"--sample-rate must be 8000-384000 Hz, got {args.sample_rate}")
    status = JobStatusLine(request.model, request.quality)  # on a terminal only
    try:
        with engine_from_args(args, status.on_event) as engine:
            result = engine.wait(engine.submit(request))
    finally:
        status.close()
    if loop_of is not None:
        loop_takes(result, int(loop_of.bars), loop_of.bpm, loop_of.time_signature)
    # Fast mode's CPU kernel is measured per machine (`segue models` shows why it won); one summary line.
    kernel = f", kernel: {result.kernel}" if result.kernel not in ("", "dense") else ""
    print(
        f"{len(result.takes)} take(s) in {result.seconds_taken:.1f} s on {result.device}, "
        f"quality {result.quality} ({result.precision}{kernel})",
        file=sys.stderr,
    )
    with ClipLibrary() as library:  # every take is recorded, so `segue library` and the panel find it
        for take in result.takes:
            clip = library.add_take(
                result,
                take,
                out_dir=args.out_dir or paths.output_dir(),
                path=_output_path(args, take.index, len(result.takes)),
                sample_rate=args.sample_rate,
                bit_depth=args.bit_depth,
                include_prompt=include_prompt,
            )
            print(clip.path)
    return 0


def _output_path(args: argparse.Namespace, index: int, count: int) -> Path | None:
    if args.output is None:
        return None
    output = args.output if args.output.suffix else args.output.with_suffix(".wav")
    return output if count == 1 else output.with_name(f"{output.stem}-{index + 1}{output.suffix}")
