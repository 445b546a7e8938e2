"""Unit tests of the Python client against a fake execd in a thread; no real execd needed.

The fake server does its own framing with struct, independently of execd_client.framing.
"""

import os
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest

from execd_client import (
    Client,
    ConnectError,
    ConnectionClosed,
    ProtocolViolation,
    RequestTooLarge,
    ServerError,
    Timeout,
    default_socket_path,
    pb,
)
from execd_client.framing import encode_frame


def _recv_exactly(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send_response(conn, response, chunk_size=None):
    body = response.SerializeToString()
    data = struct.pack(">I", len(body)) + body
    if chunk_size is None:
        conn.sendall(data)
        return
    for start in range(0, len(data), chunk_size):  # dribble it out to exercise partial reads
        conn.sendall(data[start : start + chunk_size])
        time.sleep(0.001)


def hello_reply(version=1, max_frame_bytes=16 << 20):
    return pb.HelloReply(
        protocol_version=version,
        server_version="fake",
        max_frame_bytes=max_frame_bytes,
        languages=[pb.LANGUAGE_PYTHON, pb.LANGUAGE_JAVASCRIPT],
    )


class FakeExecd:
    """Accepts connections on a temporary socket; answers hello, hands every other request to `script`."""

    def __init__(self, script, hello=None):
        self.script = script
        self.hello = hello if hello is not None else hello_reply()
        self.requests = []
        self.directory = tempfile.mkdtemp(prefix="execd-fake-")
        self.path = os.path.join(self.directory, "s.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn):
        with conn:
            while True:
                header = _recv_exactly(conn, 4)
                if header is None:
                    return
                body = _recv_exactly(conn, struct.unpack(">I", header)[0])
                request = pb.Request.FromString(body)
                self.requests.append(request)
                if request.WhichOneof("body") == "hello" and isinstance(self.hello, pb.HelloReply):
                    send_response(conn, pb.Response(id=request.id, hello=self.hello))
                elif self.script(request, conn) == "close":
                    return

    def stop(self):
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def fake():
    servers = []

    def start(script=lambda request, conn: None, **kwargs):
        server = FakeExecd(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def echo(request, conn, chunk_size=None):
    result = pb.RunResult(status=pb.STATUS_OK, stdout=request.run.code, stderr=request.run.stdin)
    send_response(conn, pb.Response(id=request.id, run=result), chunk_size)


def test_golden_frame_matches_the_swift_codec():
    request = pb.Request(id=1, hello=pb.Hello(protocol_version=1, client_name="t"))
    assert encode_frame(request) == bytes.fromhex("00000009" "080112050801120174")


def test_hello_then_runs_with_responses_dribbled_byte_by_byte(fake):
    server = fake(lambda request, conn: echo(request, conn, chunk_size=1))
    with Client(server.path, client_name="tests") as client:
        assert client.hello().protocol_version == 1
        assert list(client.hello().languages) == [pb.LANGUAGE_PYTHON, pb.LANGUAGE_JAVASCRIPT]
        first = client.run("python", 'print("hi")', stdin=b"in")
        second = client.run("javascript", b"console.log(1)")
    assert first.status == pb.STATUS_OK
    assert first.stdout == b'print("hi")' and first.stderr == b"in"
    assert second.stdout == b"console.log(1)"
    hello, run1, run2 = server.requests
    assert hello.hello.protocol_version == 1 and hello.hello.client_name == "tests"
    assert [hello.id, run1.id, run2.id] == [1, 2, 3]


def test_run_request_fields_reach_the_server(fake):
    server = fake(echo)
    with Client(server.path) as client:
        client.run(
            "javascript",
            "x",
            "stdin text",
            files={"data/a.txt": "A", "tool": pb.File(content=b"#!", executable=True)},
            args=["-v"],
            deadline_ms=250,
            cpu_time_ms=1500,
            memory_bytes=64 << 20,
        )
    request = server.requests[-1]
    assert request.deadline_ms == 250
    run = request.run
    assert run.language == pb.LANGUAGE_JAVASCRIPT
    assert run.stdin == b"stdin text"
    assert run.limits.cpu_time_ms == 1500 and run.limits.memory_bytes == 64 << 20
    files = [(f.path, f.content, f.executable) for f in run.files]
    assert files == [("data/a.txt", b"A", False), ("tool", b"#!", True)]
    assert list(run.args) == ["-v"]


def test_bad_arguments_are_refused_before_sending(fake):
    server = fake(echo)
    with Client(server.path) as client:
        with pytest.raises(TypeError, match="cpu_time_ms"):
            client.run("python", "x", cpu_seconds=1)
        with pytest.raises(ValueError, match="ruby"):
            client.run("ruby", "puts 1")
    assert len(server.requests) == 1  # the hello only


def test_error_response_raises_and_the_connection_stays_usable(fake):
    def script(request, conn):
        if request.run.code == b"bad":
            error = pb.Error(code=pb.ERROR_CODE_BAD_REQUEST, message="limits.cpu_time_ms above 10000")
            send_response(conn, pb.Response(id=request.id, error=error))
        else:
            echo(request, conn)

    server = fake(script)
    with Client(server.path) as client:
        with pytest.raises(ServerError) as raised:
            client.run("python", "bad")
        assert raised.value.code == pb.ERROR_CODE_BAD_REQUEST
        assert raised.value.code_name == "ERROR_CODE_BAD_REQUEST"
        assert "cpu_time_ms" in str(raised.value)
        assert client.run("python", "ok").stdout == b"ok"


def test_connection_level_error_raises_and_closes_the_client(fake):
    def script(request, conn):
        error = pb.Error(code=pb.ERROR_CODE_FRAME_TOO_LARGE, message="frame of 40 MiB exceeds the 16 MiB limit")
        send_response(conn, pb.Response(id=0, error=error))
        return "close"

    server = fake(script)
    client = Client(server.path)
    with pytest.raises(ServerError, match="40 MiB") as raised:
        client.run("python", "x")
    assert raised.value.code_name == "ERROR_CODE_FRAME_TOO_LARGE"
    with pytest.raises(ConnectionClosed):
        client.run("python", "again")


def test_server_closing_mid_frame_raises_connection_closed(fake):
    def script(request, conn):
        conn.sendall(struct.pack(">I", 100) + b"only a part")
        return "close"

    server = fake(script)
    with Client(server.path) as client:
        with pytest.raises(ConnectionClosed, match="11 of 100"):
            client.run("python", "x")


def test_server_closing_before_the_reply_raises_connection_closed(fake):
    server = fake(lambda request, conn: "close")
    with Client(server.path) as client:
        with pytest.raises(ConnectionClosed):
            client.run("python", "x")


def test_oversized_response_is_refused_before_its_body(fake):
    def script(request, conn):
        conn.sendall(struct.pack(">I", 40 << 20))  # and no body: the client must not wait for it

    server = fake(script)
    with Client(server.path, timeout=30) as client:
        with pytest.raises(ProtocolViolation, match="41943040"):
            client.run("python", "x")


def test_request_over_the_servers_frame_limit_is_not_sent(fake):
    server = fake(echo, hello=hello_reply(max_frame_bytes=1024))
    with Client(server.path) as client:
        with pytest.raises(RequestTooLarge, match="1024"):
            client.run("python", "#" * 2000)
        assert client.run("python", "small").stdout == b"small"
    assert [r.run.code for r in server.requests[1:]] == [b"small"]


def test_version_mismatch_is_refused(fake):
    server = fake(hello=hello_reply(version=2))
    with pytest.raises(ProtocolViolation, match="version 2"):
        Client(server.path)


def test_unsupported_version_error_is_raised_on_connect(fake):
    def script(request, conn):
        error = pb.Error(code=pb.ERROR_CODE_UNSUPPORTED_VERSION, message="this execd speaks version 2")
        send_response(conn, pb.Response(id=request.id, error=error))

    server = fake(script, hello="script answers")
    with pytest.raises(ServerError) as raised:
        Client(server.path)
    assert raised.value.code == pb.ERROR_CODE_UNSUPPORTED_VERSION


def test_timeout_raises_and_closes(fake):
    server = fake(lambda request, conn: None)  # never answers runs
    client = Client(server.path, timeout=0.2)
    with pytest.raises(Timeout):
        client.run("python", "while True: pass")
    with pytest.raises(ConnectionClosed):
        client.run("python", "x")


def test_missing_socket_says_where_it_looked(tmp_path):
    path = str(tmp_path / "nothing.sock")
    with pytest.raises(ConnectError, match="EXECD_SOCKET") as raised:
        Client(path)
    assert path in str(raised.value)


def test_default_socket_path(monkeypatch):
    monkeypatch.setenv("EXECD_SOCKET", "/tmp/x.sock")
    assert default_socket_path() == "/tmp/x.sock"
    monkeypatch.setenv("EXECD_SOCKET", "")
    assert default_socket_path() == "/run/execd/execd.sock"
    monkeypatch.delenv("EXECD_SOCKET")
    assert default_socket_path() == "/run/execd/execd.sock"
