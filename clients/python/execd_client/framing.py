"""Frames: a 4-byte big-endian unsigned length, then that many bytes of one protobuf message.

See docs/protocol.md. Kept free of socket policy so it can be reused by other clients and tested alone.
"""

import struct

from .errors import ConnectionClosed, ProtocolViolation

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024


def encode_frame(message) -> bytes:
    """Serializes a protobuf message and prefixes its length."""
    body = message.SerializeToString()
    return HEADER.pack(len(body)) + body


def recv_exactly(sock, count: int) -> bytes:
    """Reads exactly `count` bytes; raises ConnectionClosed if the peer closes first."""
    chunks = []
    remaining = count
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            got = count - remaining
            where = "between frames" if got == 0 and count == HEADER.size else f"{got} of {count} bytes into a read"
            raise ConnectionClosed(f"execd closed the connection ({where})")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Reads one frame and returns its body; refuses a length above `max_frame_bytes` before reading the body."""
    (length,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if length > max_frame_bytes:
        raise ProtocolViolation(f"execd announced a frame of {length} bytes, above the {max_frame_bytes}-byte limit")
    return recv_exactly(sock, length)
