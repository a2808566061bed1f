"""A small OSC endpoint over UDP: one socket, one receive thread, strict parsing, request/reply.

Both DAW links and Segue's own control server use it. It reads the socket itself instead of using
python-osc's servers because those swallow parse errors silently (the control API must answer
every malformed datagram with an error), send a handler's return value back to the sender, sleep
on bundles with future timetags, and truncate datagrams above 8192 bytes. Parsing and building
still go through python-osc.
"""

import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pythonosc import osc_message_builder, osc_packet
from pythonosc.parsing import osc_types

from bridge.errors import DawError

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
# Largest UDP payload over IPv4; anything we read is complete, never silently truncated.
MAX_UDP_PAYLOAD_BYTES = 65507
# How often the receive thread wakes up to notice close().
_POLL_SECONDS = 0.2

Address = tuple[str, int]
OscArgs = tuple[Any, ...]


class MalformedPacket(ValueError):
    """A datagram is not a well-formed OSC message or bundle; the message says why."""


@dataclass(frozen=True)
class OscMessage:
    address: str
    args: OscArgs
    sender: Address


MessageHandler = Callable[[OscMessage], None]
GarbageHandler = Callable[[bytes, Address, str], None]

# Byte size of each fixed-size OSC argument type (OSC 1.0 plus the common extensions python-osc reads).
_FIXED_ARG_BYTES = {"i": 4, "f": 4, "r": 4, "m": 4, "c": 4, "h": 8, "d": 8, "t": 8}
_EMPTY_ARG_TYPES = set("TFNI[]")


def _check_message_layout(dgram: bytes) -> None:
    """Raise MalformedPacket unless the message's arguments fill the datagram exactly.

    python-osc pads a truncated float with zeros and skips unknown type tags; a control API must not
    act on such a message, so the declared layout is checked first.
    """
    try:
        address, index = osc_types.get_string(dgram, 0)
        if not address.startswith("/"):
            raise MalformedPacket("an OSC address must start with '/'")
        if index == len(dgram):
            return
        type_tags, index = osc_types.get_string(dgram, index)
        if not type_tags.startswith(","):
            raise MalformedPacket("the OSC type tag string must start with ','")
        for tag in type_tags[1:]:
            if tag in _FIXED_ARG_BYTES:
                index += _FIXED_ARG_BYTES[tag]
            elif tag == "s" or tag == "S":
                _, index = osc_types.get_string(dgram, index)
            elif tag == "b":
                _, index = osc_types.get_blob(dgram, index)
            elif tag not in _EMPTY_ARG_TYPES:
                raise MalformedPacket(f"unsupported OSC type tag {tag!r}")
    except (osc_types.ParseError, UnicodeDecodeError, struct.error) as error:
        raise MalformedPacket(f"malformed OSC message ({error})") from None
    if index != len(dgram):
        raise MalformedPacket(
            f"truncated or padded OSC message: arguments need {index} bytes, the datagram has {len(dgram)}"
        )


def parse_datagram(dgram: bytes) -> list[tuple[str, OscArgs]]:
    """Every (address, args) in an OSC message or bundle, in bundle order; raises MalformedPacket.

    Bundle timetags are ignored: everything is handled on arrival.
    """
    if not dgram:
        raise MalformedPacket("empty datagram")
    if len(dgram) % 4:
        raise MalformedPacket(f"an OSC packet is a multiple of 4 bytes long, this one has {len(dgram)}")
    try:
        packet = osc_packet.OscPacket(dgram)
    except (osc_packet.ParseError, UnicodeDecodeError, struct.error, IndexError, ValueError) as error:
        raise MalformedPacket(f"not an OSC message or bundle ({error})") from None
    if not packet.messages:
        raise MalformedPacket("an OSC bundle with no messages in it")
    messages = []
    for timed in packet.messages:
        _check_message_layout(timed.message.dgram)
        messages.append((timed.message.address, tuple(timed.message.params)))
    return messages


def build_message(address: str, args: Sequence[Any] = ()) -> bytes:
    """Encode one OSC message: str -> s, bool -> T/F, int -> i (h if wider), float -> f, None -> N."""
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, float) and not math.isfinite(arg):
            raise ValueError(f"cannot send a non-finite float to {address}")
        builder.add_arg(arg)
    return builder.build().dgram


@dataclass
class _Waiter:
    match: Callable[[OscMessage], bool]
    event: threading.Event = field(default_factory=threading.Event)
    message: OscMessage | None = None


class Reply:
    """A reply being waited for; registered before the request is sent, so it cannot be missed."""

    def __init__(self, endpoint: "OscEndpoint", waiter: _Waiter) -> None:
        self._endpoint = endpoint
        self._waiter = waiter

    def wait(self, timeout_seconds: float) -> OscMessage | None:
        """The matching message, or None after `timeout_seconds`."""
        try:
            self._waiter.event.wait(timeout_seconds)
            return self._waiter.message
        finally:
            self._endpoint._remove_waiter(self._waiter)


class OscEndpoint:
    """A UDP socket bound to (host, port) that receives OSC on its own thread and sends from the same port.

    `on_message` runs on the receive thread for every message; `on_garbage` for every datagram that is
    not well-formed OSC. Neither may block for long. Port 0 binds a free port (see `port`).
    """

    def __init__(
        self,
        host: str = LOCALHOST,
        port: int = 0,
        on_message: MessageHandler | None = None,
        on_garbage: GarbageHandler | None = None,
        name: str = "osc",
        max_datagram_bytes: int = MAX_UDP_PAYLOAD_BYTES,
    ) -> None:
        self._name = name
        self._max_datagram_bytes = max_datagram_bytes
        self._on_message = on_message
        self._on_garbage = on_garbage
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.bind((host, port))
        except OSError as error:
            self._socket.close()
            raise DawError(
                f"cannot listen for OSC on {host}:{port} ({error.strerror or error}); "
                "another program (or another Segue) is using that port"
            ) from None
        self._socket.settimeout(_POLL_SECONDS)
        self._thread = threading.Thread(target=self._receive_loop, name=f"segue-{name}-osc", daemon=True)

    @property
    def host(self) -> str:
        return self._socket.getsockname()[0]

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def start(self) -> "OscEndpoint":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * _POLL_SECONDS + 1.0)
        self._socket.close()

    def send(self, to: Address, address: str, args: Sequence[Any] = ()) -> None:
        """Send one message; a vanished peer is not an error for UDP, so OSError is only logged."""
        try:
            self._socket.sendto(build_message(address, args), to)
        except OSError as error:
            if not self._closed.is_set():
                log.debug("%s: sending %s to %s failed: %s", self._name, address, to, error)

    def send_raw(self, to: Address, dgram: bytes) -> None:
        try:
            self._socket.sendto(dgram, to)
        except OSError as error:
            log.debug("%s: sending %d raw bytes to %s failed: %s", self._name, len(dgram), to, error)

    def expect(self, match: Callable[[OscMessage], bool]) -> Reply:
        """Start waiting for the first message for which `match` is true (send the request after this)."""
        waiter = _Waiter(match)
        with self._lock:
            self._waiters.append(waiter)
        return Reply(self, waiter)

    def request(
        self,
        to: Address,
        address: str,
        args: Sequence[Any] = (),
        timeout_seconds: float = 1.0,
        match: Callable[[OscMessage], bool] | None = None,
    ) -> OscMessage | None:
        """Send and wait for the reply: by default the first message on the same address."""
        reply = self.expect(match or (lambda message: message.address == address))
        self.send(to, address, args)
        return reply.wait(timeout_seconds)

    def _remove_waiter(self, waiter: _Waiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _receive_loop(self) -> None:
        while not self._closed.is_set():
            try:
                dgram, sender = self._socket.recvfrom(MAX_UDP_PAYLOAD_BYTES + 1)
            except TimeoutError:
                continue
            except OSError as error:
                # Windows reports an earlier send to a closed port here (WSAECONNRESET): not fatal.
                if self._closed.is_set():
                    return
                log.debug("%s: receive error ignored: %s", self._name, error)
                time.sleep(0.01)
                continue
            try:
                self._handle_datagram(dgram, sender)
            except Exception:
                # Nothing a peer sends may stop the endpoint; a bug shows up in the log instead.
                log.exception("%s: datagram from %s could not be handled", self._name, sender)

    def _handle_datagram(self, dgram: bytes, sender: Address) -> None:
        if len(dgram) > self._max_datagram_bytes:
            self._report_garbage(
                dgram, sender, f"{len(dgram)} bytes is more than the {self._max_datagram_bytes}-byte limit"
            )
            return
        try:
            messages = parse_datagram(dgram)
        except MalformedPacket as error:
            self._report_garbage(dgram, sender, str(error))
            return
        for address, args in messages:
            message = OscMessage(address, args, sender)
            self._resolve_waiters(message)
            if self._on_message is not None:
                self._on_message(message)

    def _report_garbage(self, dgram: bytes, sender: Address, reason: str) -> None:
        log.debug("%s: ignoring datagram from %s: %s", self._name, sender, reason)
        if self._on_garbage is not None:
            self._on_garbage(dgram, sender, reason)

    def _resolve_waiters(self, message: OscMessage) -> None:
        with self._lock:
            for waiter in self._waiters:
                if waiter.message is None and waiter.match(message):
                    waiter.message = message
                    waiter.event.set()
                    self._waiters.remove(waiter)
                    break
