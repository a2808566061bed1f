"""Open the loopback devices Continue my track records the DAW from and plays takes into.

The recorder's latency is the round trip `segue devices --calibrate` measured for this pair of
devices at this rate; without one, bar snapshots rely on the audio's own beat alignment alone.
"""

from bridge.audio.calibration import saved_round_trip
from bridge.audio.capture import Recorder
from bridge.audio.devices import chosen_device
from bridge.audio.playback import Player


def start_recorder(input_query: str | None, output_query: str | None) -> tuple[Recorder, str | None]:
    """The running recorder on the chosen input (else the remembered one), with the measured round
    trip to the chosen output; and a one-line warning when that pair was never calibrated."""
    recorder = Recorder(input_query)
    output = chosen_device("output", output_query)
    latency = saved_round_trip(recorder.device, output, recorder.sample_rate)
    warning = None
    if latency is None:
        warning = (
            f"{recorder.device.label} -> {output.label} is not calibrated; run `segue devices --calibrate` "
            "for bar-exact captures"
        )
    recorder.latency_frames = latency or 0
    return recorder.start(), warning


def start_player(output_query: str | None) -> Player:
    return Player(output_query).start()
