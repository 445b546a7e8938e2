"""End-to-end tests against a real execd. The project's test script starts execd and sets EXECD_SOCKET.

These tests fail (never skip) when EXECD_SOCKET is unset or execd is not reachable.
"""

import os

import pytest

from execd_client import Client, pb


def connect() -> Client:
    """Connects to the execd under test; called inside each test so a missing execd is a failure, not an error."""
    socket_path = os.environ.get("EXECD_SOCKET")
    if not socket_path:
        pytest.fail("EXECD_SOCKET is not set: start execd and point EXECD_SOCKET at its socket")
    return Client(socket_path, timeout=60, client_name="execd_client tests")


def test_hello_reports_protocol_version_1():
    with connect() as client:
        assert client.hello().protocol_version == 1


def test_python_print():
    with connect() as client:
        result = client.run("python", 'print("hi")')
        assert result.status == pb.STATUS_OK, result
        assert result.stdout == b"hi\n"


def test_javascript_console_log():
    with connect() as client:
        result = client.run("javascript", "console.log(6*7)")
        assert result.status == pb.STATUS_OK, result
        assert result.stdout == b"42\n"


def test_stdin_is_passed_through():
    with connect() as client:
        result = client.run("python", "import sys\nsys.stdout.write(sys.stdin.read().upper())", stdin=b"abc\n")
        assert result.status == pb.STATUS_OK, result
        assert result.stdout == b"ABC\n"


def test_nonzero_exit_is_a_runtime_error():
    with connect() as client:
        result = client.run("python", "raise SystemExit(3)")
        assert result.status == pb.STATUS_RUNTIME_ERROR, result
        assert result.exit_code == 3
