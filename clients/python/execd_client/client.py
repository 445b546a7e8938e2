"""A small synchronous client for execd's Unix socket (stdlib socket + generated protobuf code)."""

import os
import socket
import threading

from google.protobuf.message import DecodeError

from . import framing
from .errors import (
    ConnectError,
    ConnectionClosed,
    ProtocolViolation,
    RequestTooLarge,
    ServerError,
    Timeout,
)
from .gen import execd_pb2 as pb

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/run/execd/execd.sock"

_LANGUAGES = {"python": pb.LANGUAGE_PYTHON, "javascript": pb.LANGUAGE_JAVASCRIPT}
_LIMIT_FIELDS = frozenset(field.name for field in pb.Limits.DESCRIPTOR.fields)


def default_socket_path() -> str:
    """$EXECD_SOCKET if set and not empty, else /run/execd/execd.sock."""
    return os.environ.get("EXECD_SOCKET") or DEFAULT_SOCKET_PATH


class Client:
    """One connection to execd. Says hello on connect and checks the protocol version.

    Requests are sent one at a time (a lock makes sharing between threads safe, but serial); for many runs in
    parallel, use one Client per thread. Use as a context manager or call close().
    """

    def __init__(self, socket_path=None, *, timeout=None, client_name="execd_client.py"):
        """Connects to `socket_path` (default: default_socket_path()).

        `timeout` (seconds, or None for none) bounds connecting and each call; on expiry Timeout is raised and
        the connection closed.
        """
        self.socket_path = socket_path or default_socket_path()
        self._lock = threading.Lock()
        self._next_id = 1
        self._max_frame_bytes = framing.DEFAULT_MAX_FRAME_BYTES
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._timeout = timeout
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.socket_path)
        except OSError as error:
            self._sock.close()
            raise ConnectError(
                f"cannot connect to execd at {self.socket_path}: {error.strerror or error} "
                "(is execd running? set EXECD_SOCKET to its socket path)"
            ) from error
        try:
            hello = pb.Hello(protocol_version=PROTOCOL_VERSION, client_name=client_name)
            reply = self.send(pb.Request(hello=hello))
            if reply.WhichOneof("body") != "hello":
                raise ProtocolViolation(f"expected a hello reply, got {reply.WhichOneof('body')}")
            if reply.hello.protocol_version != PROTOCOL_VERSION:
                raise ProtocolViolation(
                    f"execd speaks protocol version {reply.hello.protocol_version}, "
                    f"this client speaks {PROTOCOL_VERSION}; use a matching client"
                )
        except BaseException:
            self.close()
            raise
        self._hello = reply.hello
        if reply.hello.max_frame_bytes:
            self._max_frame_bytes = reply.hello.max_frame_bytes

    def hello(self) -> pb.HelloReply:
        """The server's reply to the hello sent on connect: version, languages, limits, max frame size."""
        return self._hello

    def run(self, language, code, stdin=b"", *, files=None, args=(), deadline_ms=0, **limits) -> pb.RunResult:
        """Runs a program and returns its RunResult (a verdict such as a time limit is a result, not an error).

        language: "python", "javascript" or a pb.Language value. code, stdin: str or bytes.
        files: {path relative to /tmp: bytes, str, or a pb.File (to set `executable`)}.
        limits: fields of pb.Limits, e.g. cpu_time_ms=2000, memory_bytes=256 << 20 (0 or absent: server default).
        deadline_ms: the server gives up (DEADLINE_EXCEEDED) if it cannot start the run within this time.
        """
        unknown = set(limits) - _LIMIT_FIELDS
        if unknown:
            raise TypeError(f"unknown limits {sorted(unknown)}; valid: {sorted(_LIMIT_FIELDS)}")
        if isinstance(language, str):
            if language not in _LANGUAGES:
                raise ValueError(f"unknown language {language!r}; use one of {sorted(_LANGUAGES)}")
            language = _LANGUAGES[language]
        request = pb.RunRequest(
            language=language,
            code=_as_bytes(code),
            stdin=_as_bytes(stdin),
            limits=pb.Limits(**limits),
            files=[_as_file(path, content) for path, content in (files or {}).items()],
            args=list(args),
        )
        response = self.send(pb.Request(run=request, deadline_ms=deadline_ms))
        if response.WhichOneof("body") != "run":
            raise ProtocolViolation(f"expected a run result, got {response.WhichOneof('body')}")
        return response.run

    def send(self, request: pb.Request) -> pb.Response:
        """Sends any request (its id is assigned here) and returns the response; errors are raised as ServerError."""
        response = self._call(request)
        if response.WhichOneof("body") == "error":
            raise _server_error(response.error)
        return response

    def close(self):
        """Closes the connection. Safe to call twice."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _call(self, request: pb.Request) -> pb.Response:
        with self._lock:
            if self._sock is None:
                raise ConnectionClosed("the client is closed; create a new Client")
            request.id = self._next_id
            self._next_id += 1
            frame = framing.encode_frame(request)
            if len(frame) - framing.HEADER.size > self._max_frame_bytes:
                raise RequestTooLarge(
                    f"request of {len(frame) - framing.HEADER.size} bytes exceeds the server's "
                    f"{self._max_frame_bytes}-byte frame limit; send less code, stdin or files"
                )
            try:
                self._sock.sendall(frame)
                response = pb.Response.FromString(framing.read_frame(self._sock, self._max_frame_bytes))
            except socket.timeout:
                self.close()
                raise Timeout(f"no response from execd within {self._timeout} s; the connection was closed") from None
            except DecodeError as error:
                self.close()
                raise ProtocolViolation(f"execd sent a frame that is not a Response: {error}") from None
            except (ConnectionClosed, ProtocolViolation):
                self.close()
                raise
            except OSError as error:
                self.close()
                raise ConnectionClosed(f"connection to execd failed: {error}") from error
            if response.id == 0 and response.WhichOneof("body") == "error":
                # A connection-level error: the server is closing the connection.
                self.close()
                raise _server_error(response.error)
            if response.id != request.id:
                self.close()
                raise ProtocolViolation(f"response id {response.id} does not match request id {request.id}")
            return response


def _as_file(path, content) -> pb.File:
    if isinstance(content, pb.File):
        file = pb.File()
        file.CopyFrom(content)
        file.path = path
        return file
    return pb.File(path=path, content=_as_bytes(content))


def _as_bytes(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _server_error(error: pb.Error) -> ServerError:
    try:
        name = pb.ErrorCode.Name(error.code)
    except ValueError:
        name = f"ERROR_CODE_{error.code}"
    return ServerError(error.code, name, error.message)
