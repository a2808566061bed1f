"""Audio devices: list them, find one by name the way sounddevice does, and remember the choice.

Producers route the DAW into a loopback device (BlackHole, VB-CABLE, JACK) and pick it here by any
part of its name. The choice is saved in the settings as the device's label ("<name>, <host API>"),
not its index: indices change when devices come and go.
"""

import sys
from dataclasses import dataclass
from typing import Literal

from bridge.errors import DeviceError
from bridge.settings import load_settings, update_settings

Kind = Literal["input", "output"]

# Audio callbacks are Python: every block they need the GIL, which a busy thread otherwise keeps for up
# to 5 ms (Python's default switch interval), as long as a whole 256-frame block at 48 kHz.
AUDIO_GIL_SWITCH_SECONDS = 0.001


def portaudio():
    """The sounddevice module, or a DeviceError saying how to install PortAudio."""
    try:
        import sounddevice
    except OSError as error:  # sounddevice raises OSError when the PortAudio library is missing
        raise DeviceError(
            f"PortAudio is not available ({error}); install it (Debian/Ubuntu: apt install libportaudio2)"
        ) from None
    return sounddevice


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    host_api: str
    input_channels: int
    output_channels: int
    default_sample_rate: int

    @property
    def label(self) -> str:
        """'<name>, <host API>': the string name queries match against, and what settings store."""
        return f"{self.name}, {self.host_api}"

    def channels(self, kind: Kind) -> int:
        return self.input_channels if kind == "input" else self.output_channels


def list_devices(kind: Kind | None = None) -> list[AudioDevice]:
    """Every device PortAudio knows (only those with `kind` channels if given), in PortAudio's order."""
    sd = portaudio()
    host_apis = sd.query_hostapis()
    devices = [
        AudioDevice(
            index=info["index"],
            name=info["name"],
            host_api=host_apis[info["hostapi"]]["name"],
            input_channels=info["max_input_channels"],
            output_channels=info["max_output_channels"],
            default_sample_rate=round(info["default_samplerate"]),
        )
        for info in sd.query_devices()
    ]
    return [device for device in devices if kind is None or device.channels(kind) > 0]


def find_device(query: str | int | None, kind: Kind) -> AudioDevice:
    """The `kind` device matching `query`: an index, space-separated parts of its label (in order,
    any case, as sounddevice matches them; an exact name or label wins over partial matches), or
    None for the system default. Raises DeviceError naming the query when none or several match.
    """
    sd = portaudio()
    try:
        info = sd.query_devices(query, kind)
    except ValueError as error:
        lines = str(error).splitlines()
        if len(lines) > 1:  # sounddevice lists the candidates, one per line
            raise DeviceError(
                f"several {kind} devices match {query!r}: {'; '.join(lines[1:])}; "
                "give more of the name, or the host API"
            ) from None
        raise DeviceError(f"no {kind} device matches {query!r}; `segue devices` lists them") from None
    except sd.PortAudioError as error:
        if query is None:
            raise DeviceError(f"there is no default {kind} device; choose one with `segue devices`") from None
        raise DeviceError(f"{kind} device {query!r} is not usable: {error}") from None
    if isinstance(query, int) and info["max_" + kind + "_channels"] < 1:
        raise DeviceError(f"device {query} ({info['name']}) has no {kind} channels")
    return next(device for device in list_devices() if device.index == info["index"])


def chosen_device(kind: Kind, query: str | int | None = None) -> AudioDevice:
    """The device to use: `query` if given, else the remembered choice, else the system default."""
    if query is not None:
        return find_device(query, kind)
    remembered = _remembered(kind)
    if remembered is None:
        return find_device(None, kind)
    try:
        return find_device(remembered, kind)
    except DeviceError:
        raise DeviceError(
            f"the remembered {kind} device {remembered!r} is not available; "
            f"connect it or choose another with `segue devices --{kind} NAME`"
        ) from None


def remember_device(kind: Kind, device: AudioDevice | None) -> None:
    """Save `device` (None: the system default) as the `kind` device for next time."""
    label = device.label if device is not None else None

    def change(settings) -> None:
        setattr(settings.audio, f"{kind}_device", label)

    update_settings(change)


class DeviceStream:
    """What the Recorder and the Player share: a device, chosen as in chosen_device, and a float32
    callback stream on it at the device's own rate, open from start() to close()."""

    kind: Kind

    def __init__(self, device: str | int | None, channels: int | None) -> None:
        self.device = chosen_device(self.kind, device)
        self.sample_rate = self.device.default_sample_rate
        have = self.device.channels(self.kind)
        self.channels = channels or min(2, have)  # stereo, or mono on a mono device
        if not 1 <= self.channels <= have:
            raise DeviceError(f"{self.device.label} has {have} {self.kind} channels, asked for {self.channels}")
        self._stream = None

    def _callback(self, data, frames, time_info, status) -> None:
        raise NotImplementedError

    def start(self):
        if self._stream is not None:
            return self
        sd = portaudio()
        if sys.getswitchinterval() > AUDIO_GIL_SWITCH_SECONDS:
            sys.setswitchinterval(AUDIO_GIL_SWITCH_SECONDS)
        stream_class = sd.InputStream if self.kind == "input" else sd.OutputStream
        try:
            stream = stream_class(
                device=self.device.index,
                samplerate=self.sample_rate,
                channels=self.channels,
                dtype="float32",
                callback=self._callback,
            )
        except sd.PortAudioError as error:
            raise DeviceError(f"cannot open {self.device.label} for {self.kind}: {error}") from None
        try:
            stream.start()
        except sd.PortAudioError as error:
            stream.close()
            raise DeviceError(f"cannot start {self.device.label} for {self.kind}: {error}") from None
        self._stream = stream
        return self

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def stream_time(self) -> float:
        """Now, on the stream's clock (the clock callbacks are stamped with)."""
        if self._stream is None:
            raise DeviceError(f"the {self.kind} stream on {self.device.label} is not running")
        return self._stream.time


def rescan_devices() -> None:
    """Re-read the device list (PortAudio freezes it when it starts). Stops every open stream."""
    sd = portaudio()
    sd._terminate()
    sd._initialize()


def _remembered(kind: Kind) -> str | None:
    return getattr(load_settings().audio, f"{kind}_device")
