"""Exceptions raised by the execd client. All derive from ExecdError."""


class ExecdError(Exception):
    """Base class of every error this package raises."""


class ConnectError(ExecdError):
    """The client could not connect to execd's socket."""


class ServerError(ExecdError):
    """execd answered with an Error response.

    `code` is the numeric ErrorCode, `code_name` its name (e.g. "ERROR_CODE_BAD_REQUEST"), `message` what was
    wrong and what to do. Connection-level errors (frame too large, malformed frame) also close the client.
    """

    def __init__(self, code: int, code_name: str, message: str):
        super().__init__(f"{code_name}: {message}")
        self.code = code
        self.code_name = code_name
        self.message = message


class ConnectionClosed(ExecdError):
    """The connection is gone; create a new Client."""


class Timeout(ExecdError):
    """No response within the client's timeout; the connection was closed (its state is unknown)."""


class RequestTooLarge(ExecdError):
    """The request is larger than the server's frame limit; it was not sent and the client is still usable."""


class ProtocolViolation(ExecdError):
    """execd broke the protocol (wrong reply, unknown version, oversized or undecodable frame)."""
