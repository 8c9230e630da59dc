"""The arm wire protocol, version 1: ZeroMQ REQ/REP carrying msgpack maps. Never pickle.

Transport
    The server binds a ZeroMQ ``REP`` socket (``tcp://127.0.0.1:5560`` by default: loopback, so
    that exposing the arm to a network is a deliberate choice). The client uses a ``REQ`` socket
    and sends one request at a time; after a timeout it discards the socket and makes a new one,
    because a ZeroMQ REQ socket that missed a reply cannot send again.

Framing
    Every message is one ZeroMQ frame holding one msgpack map. numpy arrays travel as msgpack
    extension type 1 whose payload is ``msgpack([dtype.str, shape, raw bytes])``; only boolean,
    integer, unsigned, float and complex dtypes are accepted, so decoding never builds Python
    objects from the network. Messages larger than :data:`MAX_MESSAGE_BYTES` are dropped by
    ZeroMQ.

Request::

    {"v": 1, "id": <int>, "token": <str>, "cmd": <str>, "args": {...}}

Commands and their ``args`` (units: metres, radians, gripper opening in [0, 1])::

    ping         {}                                   -> {"server": str, "driver": str, "v": 1}
    heartbeat    {}                                   -> {}
    limits       {}                                   -> SafetyLimits.to_dict()
    state        {}                                   -> ArmState.to_dict()
    move_delta   {"delta": f64[6], "gripper": f|nil}  -> MotionResult.to_dict()
    move_to      {"pose": f64[6], "gripper": f|nil}   -> MotionResult.to_dict()
    set_gripper  {"opening": f}                       -> {"gripper": f, "clips": [str]}
    home         {}                                   -> ArmState.to_dict()
    stop         {}                                   -> {}

Response::

    {"v": 1, "id": <request id>, "ok": true,  "result": {...}}
    {"v": 1, "id": <request id>, "ok": false, "error": {"type": <str>, "message": <str>}}

``error.type`` is the name of a :mod:`hardware.errors` class (``AuthenticationError``,
``SafetyError``, ``HardwareError``, ``ConfigError``, ...); the client raises that class with the
server's message. A request with a wrong token gets ``AuthenticationError`` and changes nothing,
not even the heartbeat clock.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from hardware import errors
from hardware.errors import DaftError, HardwareError

PROTOCOL_VERSION = 1
DEFAULT_PORT = 5560
DEFAULT_HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 1 << 20
COMMANDS = (
    "ping",
    "heartbeat",
    "limits",
    "state",
    "move_delta",
    "move_to",
    "set_gripper",
    "home",
    "stop",
)
_NDARRAY_EXT = 1
_SAFE_DTYPE_KINDS = "biufc"

#: Error classes a response may name; anything else arrives as HardwareError.
ERROR_TYPES: dict[str, type[DaftError]] = {
    cls.__name__: cls
    for cls in (
        errors.DaftError,
        errors.ConfigError,
        errors.HardwareError,
        errors.DeviceNotFoundError,
        errors.ConnectionLostError,
        errors.AuthenticationError,
        errors.SafetyError,
        errors.CameraError,
    )
}


class ProtocolViolation(HardwareError):
    """A message that does not follow this protocol (wrong version, shape or field)."""


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _SAFE_DTYPE_KINDS:
            raise TypeError(f"cannot send an array of dtype {obj.dtype} over the arm protocol")
        arr = np.ascontiguousarray(obj)
        return msgpack.ExtType(
            _NDARRAY_EXT, msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()])
        )
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, frozenset, set)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} in an arm protocol message")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _NDARRAY_EXT:
        raise ProtocolViolation(f"unknown msgpack extension type {code}")
    dtype_str, shape, raw = msgpack.unpackb(data, raw=False)
    dtype = np.dtype(dtype_str)
    if dtype.kind not in _SAFE_DTYPE_KINDS:
        raise ProtocolViolation(f"refusing array of dtype {dtype} from the network")
    count = int(np.prod(shape)) if shape else 1
    if count * dtype.itemsize != len(raw):
        raise ProtocolViolation("array payload size does not match its shape and dtype")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def encode(message: dict[str, Any]) -> bytes:
    """Serialise one message map to bytes (msgpack, arrays as extension type 1)."""
    return msgpack.packb(message, default=_default, use_bin_type=True)


def decode(data: bytes) -> dict[str, Any]:
    """Parse bytes into a message map; raise :class:`ProtocolViolation` on anything malformed."""
    try:
        message = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=True)
    except ProtocolViolation:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolViolation(f"undecodable message ({type(exc).__name__}: {exc})") from exc
    if not isinstance(message, dict):
        raise ProtocolViolation(f"a message must be a map; got {type(message).__name__}")
    return message


def make_request(
    cmd: str, token: str, request_id: int, args: dict[str, Any] | None = None
) -> bytes:
    """Encode a request."""
    return encode(
        {"v": PROTOCOL_VERSION, "id": request_id, "token": token, "cmd": cmd, "args": args or {}}
    )


def make_ok(request_id: Any, result: Any) -> bytes:
    """Encode a success response."""
    return encode({"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result})


def error_type_name(exc: BaseException) -> str:
    """The most specific :data:`ERROR_TYPES` name in ``exc``'s class hierarchy."""
    for cls in type(exc).__mro__:
        if cls.__name__ in ERROR_TYPES and issubclass(cls, DaftError):
            return cls.__name__
    return "HardwareError"


def make_error(request_id: Any, exc: BaseException | str, type_name: str | None = None) -> bytes:
    """Encode an error response from an exception (or a message plus a type name)."""
    if isinstance(exc, BaseException):
        type_name = type_name or error_type_name(exc)
        message = str(exc)
    else:
        message = exc
    return encode(
        {
            "v": PROTOCOL_VERSION,
            "id": request_id,
            "ok": False,
            "error": {"type": type_name or "HardwareError", "message": message},
        }
    )


def parse_request(message: dict[str, Any]) -> tuple[Any, str, str, dict[str, Any]]:
    """Validate a decoded request and return ``(id, token, cmd, args)``."""
    request_id = message.get("id")
    version = message.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolViolation(
            f"protocol version mismatch: client speaks v{version}, server speaks "
            f"v{PROTOCOL_VERSION}; install the same DAFT version on both machines"
        )
    token, cmd, args = message.get("token"), message.get("cmd"), message.get("args", {})
    if not isinstance(token, str):
        token = ""
    if cmd not in COMMANDS:
        raise ProtocolViolation(f"unknown command {cmd!r}; valid commands: {', '.join(COMMANDS)}")
    if not isinstance(args, dict):
        raise ProtocolViolation(f"'args' must be a map; got {type(args).__name__}")
    return request_id, token, cmd, args


def raise_for_response(response: dict[str, Any], address: str) -> Any:
    """Return a response's ``result`` or raise the error class it names."""
    if response.get("ok") is True:
        return response.get("result")
    err = response.get("error") or {}
    cls = ERROR_TYPES.get(str(err.get("type")), HardwareError)
    raise cls(f"arm server {address}: {err.get('message', 'unknown error')}")
