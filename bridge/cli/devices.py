"""`segue devices`: list audio devices, choose the loopback input and output, calibrate the round trip."""

import argparse

from bridge.audio.calibration import calibrate, saved_round_trip
from bridge.audio.devices import AudioDevice, chosen_device, find_device, list_devices, remember_device
from bridge.errors import DeviceError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list audio devices; choose and calibrate the loopback input and output",
        description="Without options, list the audio devices. NAME is an index or any part of "
        "'<device name>, <host API>' (several parts separated by spaces); 'default' forgets the choice.",
    )
    parser.add_argument("--input", metavar="NAME", help="record the DAW from this device (remembered)")
    parser.add_argument("--output", metavar="NAME", help="play clips into the DAW through this device (remembered)")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="play a click out of the output, hear it on the input, and store the round trip",
    )
    parser.set_defaults(handler=run_devices)


def run_devices(args: argparse.Namespace) -> int:
    for kind in ("input", "output"):
        query = getattr(args, kind)
        if query is not None:
            device = None if query == "default" else find_device(_index_or_name(query), kind)
            remember_device(kind, device)
    if args.calibrate:
        calibration = calibrate()
        print(
            f"round trip: {calibration.round_trip_frames} frames "
            f"({calibration.round_trip_seconds * 1000:.2f} ms at {calibration.sample_rate} Hz), saved"
        )
        return 0
    _print_devices()
    return 0


def _print_devices() -> None:
    devices = list_devices()
    if not devices:
        print("no audio devices found (is the loopback driver or JACK running?)")
        return
    chosen = {kind: _chosen_or_none(kind) for kind in ("input", "output")}
    print(f"   {'#':>3}  {'in':>3} {'out':>3}  {'rate':>6}  device, host API")
    for device in devices:
        marks = "".join(letter if chosen[kind] == device else " " for kind, letter in (("input", "I"), ("output", "O")))
        print(
            f"{marks} {device.index:>3}  {device.input_channels:>3} {device.output_channels:>3}  "
            f"{device.default_sample_rate:>6}  {device.label}"
        )
    print("\nI = input (records the DAW), O = output (plays into the DAW); change with --input/--output NAME")
    if chosen["input"] and chosen["output"]:
        frames = saved_round_trip(chosen["input"], chosen["output"], chosen["input"].default_sample_rate)
        print("round trip: " + (f"{frames} frames (calibrated)" if frames is not None else "not calibrated (--calibrate)"))


def _chosen_or_none(kind) -> AudioDevice | None:
    try:
        return chosen_device(kind)
    except DeviceError:
        return None


def _index_or_name(query: str) -> int | str:
    return int(query) if query.isdigit() else query
