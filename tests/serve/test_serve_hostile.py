"""Hostile clients against a real server on 127.0.0.1: connections that never end, pipelines
with garbage, refusals a plain client must read, Host and Origin, the connection limit.

Each test asserts what a client sees: the status and JSON of each answer, their order, whether
the connection is closed and within which (generous) deadline.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from digitrec.serve.settings import Limits
from tests.helpers.server import SEVEN, Server, abuse, is_json_error, metric

SECURITY = ("content-security-policy", "x-content-type-options", "x-frame-options")


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """The server closes `sock` (EOF or reset) within `seconds`, reading and dropping answers."""
    sock.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def answers(sock: socket.socket, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """The next `n` answers on `sock`, in order (abuse.read_answer would drop bytes past one)."""
    stream = sock.makefile("rb")
    out = []
    for _ in range(n):
        line = stream.readline()
        if not line:
            raise abuse.Cut("closed before an answer")
        headers = {}
        while (field := stream.readline()) not in (b"\r\n", b""):
            name, _, value = field.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = stream.read(int(headers.get("content-length", "0")))
        out.append((int(line.split()[1]), headers, body))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    options = {"timeout_keep_alive": 1}
    with Server(
        tmp_path_factory.mktemp("hostile"), uvicorn_options=options, feedback_per_minute=0
    ) as s:
        yield s


# ---------------------------------------------------------------- every state has a deadline


def test_a_body_byte_sent_after_the_answer_does_not_hold_the_connection(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
        status, _, _ = abuse.read_answer(sock)
        assert status == 200
        sock.sendall(b"x")  # the body, late: uvicorn cancels its keep-alive timer on it
        assert closed_within(sock, 6)  # keep-alive 1 s here; it was open for ever


def test_the_rest_of_a_refused_body_sent_late_does_not_hold_the_connection(server: Server) -> None:
    with server.connect() as sock:
        head = abuse.http_request("/api/v1/predict", b"\0" * (6 << 20), "image/png")
        sock.sendall(head[: head.index(b"\r\n\r\n") + 4])  # the head: 413 from Content-Length
        status, _, _ = abuse.read_answer(sock)
        assert status == 413
        sock.sendall(b"\0" * 1000)  # some of the body, then nothing
        assert closed_within(sock, 6)  # the body deadline, 1 s here


def test_a_flood_of_late_byte_and_idle_connections_leaves_room_for_a_client(
    tmp_path: Path,
) -> None:
    """More held connections than the limit: the oldest without a request in progress make
    room, so a client's request is answered (it got 503 for as long as they were held)."""
    limits = Limits(head_seconds=60, body_seconds=60)  # no timer rescues the client here
    options = {"timeout_keep_alive": 60, "limit_concurrency": 200}
    held: list[socket.socket] = []
    with Server(tmp_path, limits, options) as server:
        try:
            for i in range(1200):  # 6 x the limit: late-byte, idle, and half a head
                sock = server.connect()
                held.append(sock)
                if i % 3 == 0:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
                elif i % 3 == 1:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(3):
                with server.connect() as sock:
                    status, headers, body = server.ask(
                        sock, abuse.http_request("/api/v1/predict", SEVEN, "image/png")
                    )
                    assert status == 200, body
                    assert json.loads(body)["digit"] == 7
        finally:
            for sock in held:
                sock.close()


def test_past_the_limit_with_every_connection_busy_the_503_is_json_and_counted(
    tmp_path: Path,
) -> None:
    options = {"limit_concurrency": 4}
    with Server(tmp_path, Limits(body_seconds=30), options) as server:
        with server.connect() as sock:
            before = server.ask(sock, abuse.http_request("/metrics", method="GET"))[2].decode()
        busy = []
        try:
            for _ in range(3):  # requests whose bodies are still coming: in progress
                sock = server.connect()
                sock.sendall(
                    abuse.http_request("/api/v1/feedback", b"{" * 10, "application/json")[:-5]
                )
                busy.append(sock)
            time.sleep(0.3)
            with server.connect() as sock:
                status, headers, body = server.ask(
                    sock, abuse.http_request("/healthz", method="GET")
                )
            assert status == 503 and is_json_error(body)
            assert headers["retry-after"] and headers["connection"] == "close"
            assert all(h in headers for h in SECURITY)
        finally:
            for sock in busy:
                sock.close()
        time.sleep(0.3)
        with server.connect() as sock:
            status, _, body = server.ask(sock, abuse.http_request("/metrics", method="GET"))
        assert status == 200
        busy_healthz = 'digitrec_requests_total{route="/healthz",status="503"}'
        assert metric(body.decode(), busy_healthz) - metric(before, busy_healthz) == 1


# ---------------------------------------------------------------- pipelines and garbage


def test_every_request_before_garbage_is_answered_in_order_then_a_json_400(
    server: Server,
) -> None:
    log = logging.getLogger("uvicorn.error")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        for n in (1, 20):
            requests = b"".join(
                abuse.http_request("/api/v1/predict", SEVEN, "image/png", X_Request_ID=f"r{i}")
                for i in range(n)
            )
            with server.connect() as sock:
                sock.sendall(requests + b"GARBAGE\r\n\r\n")
                got = answers(sock, n + 1)
                for i, (status, headers, _) in enumerate(got[:n]):
                    assert status == 200 and headers["x-request-id"] == f"r{i}"
                status, headers, body = got[n]
                assert status == 400 and is_json_error(body)
                assert headers["connection"] == "close"
                assert closed_within(sock, 5)
    finally:
        log.removeHandler(handler)
    assert not [r for r in records if r.exc_info], "a traceback was logged for a client error"


class AlwaysClose:
    """A balancer (serve/balance.py) that finds this worker over its share at every answer."""

    def close_after(self, client: object) -> bool:
        return True


def test_pipelined_requests_are_all_answered_even_when_the_balancer_closes(
    server: Server,
) -> None:
    server.app.state.balancer = AlwaysClose()
    requests = [
        abuse.http_request("/api/v1/predict", SEVEN, "image/png", X_Request_ID=f"p{i}")
        if i % 3
        else abuse.http_request("/healthz", method="GET", X_Request_ID=f"p{i}")
        for i in range(100)
    ]
    try:
        with server.connect() as sock:
            sock.sendall(b"".join(requests))
            got = answers(sock, 100)
            assert closed_within(sock, 5)  # after the last: the balancer's close
    finally:
        server.app.state.balancer = None
    assert all(status == 200 for status, _, _ in got)
    ids = [headers["x-request-id"] for _, headers, _ in got]
    assert ids == [f"p{i}" for i in range(100)]


# ---------------------------------------------------------------- refusals a client can read


@pytest.mark.parametrize("version", ["1.1 close", "1.0"])
def test_a_413_is_readable_by_the_standard_library_on_connection_close(
    server: Server, version: str
) -> None:
    url = f"http://127.0.0.1:{server.port}/api/v1/predict"
    body = b"\0" * (6 << 20)
    if version == "1.0":
        http.client.HTTPConnection._http_vsn, old = 10, http.client.HTTPConnection._http_vsn  # type: ignore[attr-defined]
        http.client.HTTPConnection._http_vsn_str, old_str = "HTTP/1.0", "HTTP/1.1"  # type: ignore[attr-defined]
    try:
        request = urllib.request.Request(url, body, {"Content-Type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as e:  # urllib sends Connection: close
            urllib.request.urlopen(request, timeout=10)
    finally:
        if version == "1.0":
            http.client.HTTPConnection._http_vsn = old  # type: ignore[attr-defined]
            http.client.HTTPConnection._http_vsn_str = old_str  # type: ignore[attr-defined]
    assert e.value.code == 413
    assert "limit" in json.loads(e.value.read())["error"]


def oversize(tmp_path: Path) -> Path:
    """A 6 MB "PNG" file, over the default 5 MB body limit."""
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * (6 << 20))
    return path


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_413_is_readable_by_python_http_clients(server: Server, client: str) -> None:
    url = f"http://127.0.0.1:{server.port}/api/v1/predict"
    body, headers = b"\0" * (6 << 20), {"Content-Type": "image/png"}
    if client == "requests":
        import requests

        with requests.Session() as session:  # keep-alive: the server's answer closes it
            answer = session.post(url, data=body, headers=headers, timeout=10)
            status, payload = answer.status_code, answer.json()
            answer = session.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
            assert answer.status_code == 200  # a new connection, after the closed one
    else:
        import httpx

        with httpx.Client(timeout=10) as http:
            answer = http.post(url, content=body, headers=headers)
            status, payload = answer.status_code, answer.json()
            assert http.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
    assert status == 413
    assert "limit" in payload["error"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl (tools/install-system.sh)")
@pytest.mark.parametrize("expect", ["100-continue", "none"])
def test_a_413_is_readable_by_curl(server: Server, tmp_path: Path, expect: str) -> None:
    # With a body this large curl sends "Expect: 100-continue": the 413, from Content-Length,
    # comes before any 100 and curl sends none of the body. With "Expect:" it sends the body at
    # once and stops when the 413 arrives; the server reads and drops what is in flight.
    command = ["curl", "-sS", "-X", "POST", "--data-binary", f"@{oversize(tmp_path)}"]
    command += ["-H", "Content-Type: image/png", "-o", str(tmp_path / "answer")]
    command += ["-w", "%{http_code}", f"http://127.0.0.1:{server.port}/api/v1/predict"]
    if expect == "none":
        command += ["-H", "Expect:"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr  # no "connection reset", no "broken pipe"
    assert run.stdout == "413"
    assert "limit" in json.loads((tmp_path / "answer").read_bytes())["error"]


def test_protocol_refusals_carry_the_security_headers(server: Server) -> None:
    with server.connect() as sock:
        status, headers, body = server.ask(sock, b"\x16\x03\x01 hello\r\n\r\n")
    assert status == 400 and is_json_error(body)
    assert all(h in headers for h in SECURITY) and headers["x-request-id"]


# ---------------------------------------------------------------- Host and Origin


def test_an_http11_request_without_host_is_400_an_http10_one_is_served(server: Server) -> None:
    with server.connect() as sock:
        status, _, body = server.ask(sock, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert status == 400 and "Host" in json.loads(body)["error"]
    with server.connect() as sock:
        status, _, _ = server.ask(sock, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert status == 200


def correction(**headers: str) -> bytes:
    image = "data:image/png;base64," + base64.b64encode(SEVEN).decode()
    body = json.dumps({"image": image, "label": 7}).encode()
    return abuse.http_request("/api/v1/feedback", body, "application/json", **headers)


def feedback(server: Server, **headers: str) -> int:
    with server.connect() as sock:
        status, _, _ = server.ask(sock, correction(**headers))
    return status


def test_corrections_are_taken_from_this_servers_page_only(server: Server) -> None:
    assert feedback(server) == 201  # a script: no Origin, no Sec-Fetch-Site
    assert feedback(server, Origin="http://127.0.0.1") == 201  # http_request sends Host 127.0.0.1
    assert feedback(server, Sec_Fetch_Site="same-origin", Origin="http://127.0.0.1") == 201
    assert feedback(server, Origin="https://evil.example") == 403
    assert feedback(server, Sec_Fetch_Site="cross-site") == 403
    assert feedback(server, Sec_Fetch_Site="same-site", Origin="http://a.127.0.0.1") == 403


def test_an_api_key_setting_guards_corrections(tmp_path: Path) -> None:
    with Server(tmp_path, feedback_api_key="s3cret-key", feedback_per_minute=0) as server:
        assert feedback(server) == 403
        assert feedback(server, X_API_Key="wrong") == 403
        assert feedback(server, X_API_Key="s3cret-key") == 201


def test_a_loopback_server_answers_localhost_names_only_by_default() -> None:
    from digitrec.serve.settings import Settings, loopback_hosts

    assert "localhost" in loopback_hosts("127.0.0.1") and "127.0.0.1" in loopback_hosts("127.0.0.1")
    assert loopback_hosts("0.0.0.0") == []  # bound for others: the operator names the site
    assert Settings().allowed_hosts == []


# ---------------------------------------------------------------- smaller contract points


def test_a_json_body_that_is_not_utf8_is_422_on_every_route(server: Server) -> None:
    with server.connect() as sock:
        for path in abuse.PATHS:
            request = abuse.http_request(path, b"\xff", "application/json")
            status, _, body = server.ask(sock, request)
            assert status == 422 and is_json_error(body), (path, status, body)


def test_a_full_stores_507_names_its_real_cap(tmp_path: Path) -> None:
    with Server(tmp_path, feedback_max_bytes=200_000, feedback_per_minute=0) as server:
        for _ in range(200):
            with server.connect() as sock:
                status, _, body = server.ask(sock, correction())
            if status != 201:
                break
    assert status == 507 and "200,000 bytes" in json.loads(body)["error"]
