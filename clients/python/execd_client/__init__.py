"""Python client for execd: runs untrusted Python/JavaScript through execd's Unix socket.

    from execd_client import Client, pb
    with Client() as client:
        result = client.run("python", 'print("hi")')
        assert result.status == pb.STATUS_OK and result.stdout == b"hi\\n"
"""

from .client import DEFAULT_SOCKET_PATH, PROTOCOL_VERSION, Client, default_socket_path
from .errors import (
    ConnectError,
    ConnectionClosed,
    ExecdError,
    ProtocolViolation,
    RequestTooLarge,
    ServerError,
    Timeout,
)
from .gen import execd_pb2 as pb

__all__ = [
    "Client",
    "ConnectError",
    "ConnectionClosed",
    "DEFAULT_SOCKET_PATH",
    "ExecdError",
    "PROTOCOL_VERSION",
    "ProtocolViolation",
    "RequestTooLarge",
    "ServerError",
    "Timeout",
    "default_socket_path",
    "pb",
]
