"""`segue generate` and `segue continue`: one job through the engine process, clips written to disk."""

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from bridge import paths
from bridge.audio.io import read_audio
from bridge.engine.events import EngineEvent, ModelLoading, Progress
from bridge.engine.request import DEFAULT_MODEL, QUALITY_MODES, GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import InvalidParameterError
from bridge.library import ClipLibrary


def register(subparsers: argparse._SubParsersAction) -> None:
    generate = subparsers.add_parser("generate", help="make clips from a text prompt")
    generate.add_argument("prompt", help='what to play, e.g. "lo-fi hip-hop drums, dusty, 90 bpm"')
    _add_common_options(generate)
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
    parser.add_argument("--quality", choices=QUALITY_MODES, default="auto", help="exact or fast (default: fast on CPU)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=Path, help="output WAV (takes get -1, -2 ... when several)")
    out.add_argument("--out-dir", type=Path, help="output folder (default: Segue's clip folder)")
    parser.add_argument("--sample-rate", type=int, help="write at this rate (default: the model's, 32000)")
    parser.add_argument("--bit-depth", choices=["float", "24", "16"], default="float")


def _request(args: argparse.Namespace, **extra) -> GenerationRequest:
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
    return _run(args, _request(args), include_prompt=False)


def run_continue(args: argparse.Namespace) -> int:
    read_audio(args.input)  # fail fast, before starting the engine, on a missing or unreadable file
    prompt_seconds = args.prompt_seconds if args.prompt_seconds is not None else (None if args.prompt_bars else 10.0)
    request = _request(
        args, audio_path=str(Path(args.input).resolve()), prompt_seconds=prompt_seconds, prompt_bars=args.prompt_bars
    )
    return _run(args, request, include_prompt=args.include_prompt)


def _run(args: argparse.Namespace, request: GenerationRequest, include_prompt: bool) -> int:
    if args.sample_rate is not None and not 8000 <= args.sample_rate <= 384000:
        raise InvalidParameterError(f"--sample-rate must be 8000-384000 Hz, got {args.sample_rate}")
    bar = tqdm(total=1, unit="step", file=sys.stderr, disable=None, dynamic_ncols=True, leave=False)

    def on_event(event: EngineEvent) -> None:
        if isinstance(event, ModelLoading):
            expected = f" (about {event.expected_seconds:.0f} s)" if event.expected_seconds else ""
            bar.set_description(event.message + expected)
        elif isinstance(event, Progress):
            bar.set_description("generating")
            bar.total = event.steps_total
            bar.n = event.steps_done
            bar.refresh()

    with EngineClient(device=args.device, on_event=on_event) as engine:
        result = engine.wait(engine.submit(request))
    bar.close()
    print(
        f"{len(result.takes)} take(s) in {result.seconds_taken:.1f} s on {result.device}, "
        f"quality {result.quality} ({result.precision})",
        file=sys.stderr,
    )
    print(f"kernel: {result.kernel} (fast mode's CPU kernel is measured per machine; `segue models` shows it)", file=sys.stderr)
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
