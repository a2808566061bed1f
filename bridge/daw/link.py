"""What every DAW link shares: an OSC endpoint, a transport model and a supervisor that reconnects.

A link is "connected" while the DAW keeps talking; after `timeout_seconds` of silence it is marked
disconnected and the subclass probes until the DAW answers again, then re-subscribes, because a
restarted DAW has forgotten every subscription.
"""

import logging
import threading
import time

from bridge.daw.osc_link import LOCALHOST, Address, OscEndpoint, OscMessage
from bridge.daw.placement import ClipTarget, PlacedClip, PlacementUnavailable
from bridge.daw.transport import TransportState
from bridge.errors import DawError

log = logging.getLogger(__name__)


class DawLink:
    """Base class: subclasses implement `_handle`, `_on_connected` and `_tick`, and `place_clip`."""

    name = "none"
    display_name = "no DAW"

    def __init__(
        self,
        daw_address: Address,
        listen_port: int,
        host: str = LOCALHOST,
        poll_seconds: float = 0.15,
        timeout_seconds: float = 2.0,
        probe_seconds: float = 1.0,
    ) -> None:
        self.transport = TransportState(self.name)
        self.daw_address = daw_address
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.probe_seconds = probe_seconds
        self._endpoint = OscEndpoint(host, listen_port, on_message=self._receive, name=self.name)
        self._closed = threading.Event()
        self._reconnect_needed = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"segue-{self.name}-link", daemon=True)

    @property
    def listen_port(self) -> int:
        return self._endpoint.port

    @property
    def connected(self) -> bool:
        return self.transport.snapshot().connected

    def start(self) -> "DawLink":
        self._endpoint.start()
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.poll_seconds + self.probe_seconds + 2.0)
        self._endpoint.close()

    def __enter__(self) -> "DawLink":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, address: str, *args: object) -> None:
        self._endpoint.send(self.daw_address, address, args)

    def place_clip(self, target: ClipTarget) -> PlacedClip:
        raise PlacementUnavailable(f"{self.display_name} cannot place clips")

    def describe(self) -> str:
        """One line for the producer: which DAW, where, and whether it answers."""
        host, port = self.daw_address
        state = "connected" if self.connected else "not answering"
        return f"{self.display_name} at {host}:{port} ({state}; Segue listens on port {self.listen_port})"

    def _require_connection(self) -> None:
        if not self.connected:
            raise DawError(f"{self.display_name} is not connected: {self._not_connected_hint()}")

    def _not_connected_hint(self) -> str:
        return "start it and check its OSC setup"

    # -- receive thread ---------------------------------------------------------------------------

    def _receive(self, message: OscMessage) -> None:
        self._heard()
        self._handle(message)

    def _heard(self) -> None:
        """The DAW just gave a sign of life; after silence, that is a new connection."""
        self.transport.heard()
        if not self.transport.snapshot().connected:
            log.info("%s is answering", self.display_name)
            self.transport.set_connected(True)
            self._reconnect_needed.set()

    def _handle(self, message: OscMessage) -> None:
        """Update the transport from one DAW message (runs on the receive thread: never block)."""

    # -- supervisor thread ------------------------------------------------------------------------

    def _supervise(self) -> None:
        next_probe_time = 0.0
        while not self._closed.is_set():
            try:
                if self._reconnect_needed.is_set():
                    self._reconnect_needed.clear()
                    self._on_connected()
                silence = self.transport.seconds_since_last_message()
                if self.connected and silence is not None and silence > self.timeout_seconds:
                    log.info("%s went silent for %.1f s: disconnected", self.display_name, silence)
                    self.transport.set_connected(False)
                if self.connected:
                    self._tick()
                elif time.monotonic() >= next_probe_time:
                    self._probe()
                    next_probe_time = time.monotonic() + self.probe_seconds
            except Exception:
                # The supervisor must survive anything; the traceback goes to the log.
                log.exception("%s link supervisor error", self.display_name)
            self._closed.wait(self.poll_seconds)

    def _on_connected(self) -> None:
        """The DAW answered after silence (or for the first time): subscribe and fetch everything."""

    def _tick(self) -> None:
        """Runs every `poll_seconds` while connected (polling, keep-alive)."""

    def _probe(self) -> None:
        """Runs every `probe_seconds` while disconnected: provoke an answer."""


class NoDawLink(DawLink):
    """`--daw none`: no DAW to follow, no socket opened; clips go to the export folder."""

    name = "none"
    display_name = "no DAW"

    def __init__(self) -> None:
        self.transport = TransportState("none")
        self.daw_address = ("", 0)

    @property
    def listen_port(self) -> int:
        return 0

    def start(self) -> "NoDawLink":
        return self

    def close(self) -> None:
        pass

    def place_clip(self, target: ClipTarget) -> PlacedClip:
        raise PlacementUnavailable("no DAW is linked (--daw none)")

    def describe(self) -> str:
        return "no DAW (started with --daw none)"
