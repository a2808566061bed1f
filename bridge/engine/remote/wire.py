"""Segue's HTTP wire format: JSON headers plus raw little-endian array bytes. Never pickle.

A *frame* is a 4-byte big-endian header length, the header (UTF-8 JSON) and the bytes of the arrays
it declares, back to back. The header is `{"value": V, "arrays": [{"dtype", "shape"}, ...]}`; inside
V a dataclass is `{"__type__": name, field: value, ...}` and an array is `{"__array__": index}`.
Only the dataclasses in `_TYPES` can be rebuilt and only the dtypes in `_DTYPES` can be read, so a
malicious body can cost a parse, never run code. A job's request is one frame (the POST body); its
events stream back as one frame each.
"""

import dataclasses
import json
import math
import struct
import typing
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bridge.engine import events
from bridge.engine.request import GenerationRequest
from bridge.errors import InvalidParameterError

MAX_HEADER_BYTES = 1 << 20
HEADER_LENGTH = struct.Struct(">I")
CONTENT_TYPE = "application/x-segue-frames"
# Audio (float32), MusicGen codes (int64, int32), PCM (int16): all an engine sends or takes.
_DTYPES = {"<f4": np.float32, "<i2": np.int16, "<i4": np.int32, "<i8": np.int64}


class WireError(InvalidParameterError):
    """A frame is malformed, truncated, or names a type or dtype the wire does not carry."""


@dataclass
class Heartbeat:
    """Sent while a job waits or a step runs long, so a silent connection means a lost server."""


@dataclass
class JobQueued:
    """The server accepted the job; `position` jobs of other producers run first on this replica."""

    position: int


_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        GenerationRequest,
        events.GenerationResult,
        events.Take,
        events.JobStarted,
        events.ModelLoading,
        events.Progress,
        events.AudioChunk,
        events.JobFinished,
        events.JobFailed,
        events.JobCancelled,
        events.EngineReady,
        Heartbeat,
        JobQueued,
    )
}


def encode(value: object) -> bytes:
    """One frame holding `value` (a registered dataclass, or JSON data with arrays inside)."""
    arrays: list[np.ndarray] = []
    tree = _to_tree(value, arrays)
    header = json.dumps(
        {"value": tree, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]},
        separators=(",", ":"),
    ).encode()
    return b"".join([HEADER_LENGTH.pack(len(header)), header, *(a.tobytes() for a in arrays)])


def decode(frame: bytes | memoryview) -> object:
    """The value of one complete frame; WireError names what is wrong."""
    value, used = _decode_prefix(memoryview(frame))
    if value is None:
        raise WireError("the message is truncated")
    if used != len(frame):
        raise WireError(f"{len(frame) - used} unexpected bytes after the message")
    return value


class FrameReader:
    """Splits a byte stream (HTTP chunks of any size) into decoded frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[object]:
        self._buffer += data
        while True:
            value, used = _decode_prefix(memoryview(self._buffer))
            if value is None:
                return
            del self._buffer[:used]
            yield value

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)


def decode_request(frame: bytes) -> GenerationRequest:
    """A GenerationRequest from a client's POST body, each field of the right kind, validated."""
    request = decode(frame)
    if not isinstance(request, GenerationRequest):
        raise WireError(f"expected a GenerationRequest, got {type(request).__name__}")
    hints = typing.get_type_hints(GenerationRequest)
    for item in dataclasses.fields(GenerationRequest):
        value = getattr(request, item.name)
        if not _has_kind(value, hints[item.name]):
            raise WireError(f"request field '{item.name}' has the wrong kind of value {value!r:.60}")
    if request.audio_path is not None:
        raise WireError("a remote engine cannot read files on your computer: send the audio itself")
    return request.validate()


def _to_tree(value: object, arrays: list[np.ndarray]) -> object:
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        if array.dtype.str not in _DTYPES:
            raise WireError(f"arrays of {value.dtype} do not travel over the wire")
        arrays.append(array)
        return {"__array__": len(arrays) - 1}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _TYPES.get(name) is not type(value):
            raise WireError(f"{name} does not travel over the wire")
        tree = {item.name: _to_tree(getattr(value, item.name), arrays) for item in dataclasses.fields(value)}
        return {"__type__": name, **tree}
    if isinstance(value, dict):
        return {str(key): _to_tree(item, arrays) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_tree(item, arrays) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_prefix(buffer: memoryview) -> tuple[object | None, int]:
    """(value, bytes used) of the frame at the start of `buffer`, or (None, 0) if it is incomplete."""
    if len(buffer) < HEADER_LENGTH.size:
        return None, 0
    (header_bytes,) = HEADER_LENGTH.unpack(buffer[: HEADER_LENGTH.size])
    if header_bytes > MAX_HEADER_BYTES:
        raise WireError(f"a message header of {header_bytes} bytes is over the {MAX_HEADER_BYTES} byte limit")
    body_start = HEADER_LENGTH.size + header_bytes
    if len(buffer) < body_start:
        return None, 0
    try:
        header = json.loads(bytes(buffer[HEADER_LENGTH.size : body_start]))
        specs = [(_DTYPES[spec["dtype"]], tuple(int(n) for n in spec["shape"])) for spec in header["arrays"]]
        tree = header["value"]
    except (ValueError, KeyError, TypeError) as error:
        raise WireError(f"malformed message header ({type(error).__name__}: {error})") from None
    if any(n < 0 for _, shape in specs for n in shape):
        raise WireError("an array has a negative dimension")
    # Python integers: a hostile shape cannot overflow into a small size.
    sizes = [math.prod(shape) * np.dtype(dtype).itemsize for dtype, shape in specs]
    end = body_start + sum(sizes)
    if len(buffer) < end:
        return None, 0
    arrays, offset = [], body_start
    for (dtype, shape), size in zip(specs, sizes, strict=True):
        # A copy: the frame's buffer is reused for the next frames.
        arrays.append(np.frombuffer(bytes(buffer[offset : offset + size]), dtype=dtype).reshape(shape))
        offset += size
    return _from_tree(tree, arrays), end


def _from_tree(tree: object, arrays: list[np.ndarray]) -> object:
    if isinstance(tree, dict):
        if "__array__" in tree:
            index = tree["__array__"]
            if not isinstance(index, int) or not 0 <= index < len(arrays):
                raise WireError(f"reference to a missing array {index!r}")
            return arrays[index]
        if "__type__" in tree:
            cls = _TYPES.get(tree["__type__"])
            if cls is None:
                raise WireError(f"unknown message type {tree['__type__']!r:.60}")
            values = {key: _from_tree(item, arrays) for key, item in tree.items() if key != "__type__"}
            names = {item.name for item in dataclasses.fields(cls)}
            if not set(values) <= names:
                raise WireError(f"{cls.__name__} has no field(s) {sorted(set(values) - names)}")
            try:
                return cls(**values)
            except TypeError as error:
                raise WireError(f"{cls.__name__}: {error}") from None
        return {key: _from_tree(item, arrays) for key, item in tree.items()}
    if isinstance(tree, list):
        return [_from_tree(item, arrays) for item in tree]
    return tree


def _has_kind(value: object, hint: object) -> bool:
    """isinstance for a request's field hints: str, int, float, bool, np.ndarray, and `X | None`."""
    options = typing.get_args(hint) if isinstance(hint, typing.types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (str, bool, np.ndarray) and isinstance(value, option):
            return True
    return False
