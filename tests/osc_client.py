"""A plain OSC peer for tests: a UDP socket on 127.0.0.1 that sends messages or raw bytes and reads replies.

Built on python-osc's message builder and parser only, independent of Segue's endpoint.
"""

import socket
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def encode(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscTestClient:
    def __init__(self, server_port: int) -> None:
        self.server = ("127.0.0.1", server_port)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def close(self) -> None:
        self.socket.close()

    def send(self, address: str, *args) -> None:
        self.socket.sendto(encode(address, *args), self.server)

    def send_raw(self, dgram: bytes) -> None:
        self.socket.sendto(dgram, self.server)

    def receive(self, timeout_seconds: float = 5.0) -> tuple[str, tuple] | None:
        self.socket.settimeout(timeout_seconds)
        try:
            data, _ = self.socket.recvfrom(65536)
        except TimeoutError:
            return None
        message = OscMessage(data)
        return message.address, tuple(message.params)

    def receive_until(self, address: str, timeout_seconds: float = 30.0) -> tuple[tuple, list]:
        """Read until a message on `address` arrives: its arguments, and everything read before it."""
        deadline = time.monotonic() + timeout_seconds
        before = []
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.receive(remaining)
            if message is None:
                break
            if message[0] == address:
                return message[1], before
            before.append(message)
        raise AssertionError(f"no {address} within {timeout_seconds} s; got {before[-5:]}")

    def ask(self, address: str, *args, timeout_seconds: float = 5.0) -> tuple[str, tuple]:
        """Send one message and return the next reply."""
        self.send(address, *args)
        reply = self.receive(timeout_seconds)
        assert reply is not None, f"no reply to {address}"
        return reply
