"""``mlhunt guard`` turned against the model it guards (issue #19), part 1: the guard's HTTP
machinery. Each test reproduces one reported attack on loopback with raw sockets (the upstream
stand-in writes the exact bytes under test) and fails on the code before the fix:

- row 1: an interim ``100 Continue`` taken as the answer poisoned the kept connection;
- row 5: no size caps on request bodies and upstream answers;
- row 8: no head deadline, no head size cap, an unbounded upstream pool;
- row 12: upstream framing parsed by hand (duplicate/odd ``Content-Length``, CL+TE, a status
  line without a reason, headers named in ``Connection:`` kept).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import h11
import httpx
import pytest

from mlhunt.guard import GuardConfig
from mlhunt.guard.upstream import StreamPool, UpstreamError
from tests.test_guard import guarded, loan, upstream

__all__ = ["loan", "upstream"]  # module fixtures shared with test_guard

Answer = Callable[[str, dict[str, str], bytes], bytes | None]


class RawUpstream:
    """A stand-in upstream on a loopback socket: each request is read with h11 and answered
    with the raw bytes ``answer(target, headers, body)`` returns (malformed on purpose; None
    closes the connection, as does ``close_after`` once answered). Records every request with
    its connection number."""

    def __init__(self, answer: Answer, delay_s: float = 0.0, close_after: bool = False) -> None:
        self.answer, self.delay_s, self.close_after = answer, delay_s, close_after
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[tuple[int, str, dict[str, str], bytes]] = []
        self.connections = self.live = self.peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c: socket.socket, n: int) -> None:
        with self._lock:
            self.live += 1
            self.peak = max(self.peak, self.live)
        c.settimeout(10)
        conn = h11.Connection(h11.SERVER)
        try:
            while not self._stop.is_set():
                target, headers, body = "", {}, b""
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        data = c.recv(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                    elif isinstance(ev, h11.Request):
                        target = ev.target.decode()
                        headers = {k.decode(): v.decode() for k, v in ev.headers}
                    elif isinstance(ev, h11.Data):
                        body += ev.data
                    elif isinstance(ev, h11.EndOfMessage):
                        break
                    else:
                        return
                self.requests.append((n, target, headers, body))
                if self.delay_s:
                    time.sleep(self.delay_s)
                out = self.answer(target, headers, body)
                if out is None:
                    return
                c.sendall(out)
                if self.close_after:
                    return
                # h11 only read the request: move it on as if it had written the answer
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
        except (OSError, h11.ProtocolError):
            return
        finally:
            with self._lock:
                self.live -= 1
            c.close()


def framed(status: bytes, body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 " + status, b"content-length: " + str(len(body)).encode(), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def echo_key(target: str, headers: dict[str, str], _body: bytes) -> bytes:
    """The answer names who asked: a client reading another's answer shows at once."""
    doc = {"for": headers.get("x-api-key"), "target": target, "scores": [0.75, 0.25]}
    return framed(b"200 OK", json.dumps(doc).encode(), b"content-type: application/json")


def exchange(
    port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[list[int], int, bytes]:
    """One request on a raw socket, read with h11: (interim statuses, status, body)."""
    conn = h11.Connection(h11.CLIENT)
    hdrs = [("host", "127.0.0.1"), *headers, ("content-length", str(len(body)))]
    data = conn.send(h11.Request(method=method, target=target, headers=hdrs))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    interim: list[int] = []
    status, out = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(s.recv(65536))
            elif isinstance(ev, h11.InformationalResponse):
                interim.append(ev.status_code)
            elif isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                out += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return interim, status, out
            else:
                raise AssertionError(ev)


@contextmanager
def guard_on(up: RawUpstream, **kw: Any) -> Iterator[tuple[httpx.Client, Any]]:
    with guarded(GuardConfig(upstream=up.url, warmup=10_000, **kw)) as (c, g):
        yield c, g


def test_expect_is_answered_by_the_guard_and_interim_answers_are_skipped() -> None:
    """Row 1: the interim 100 was taken as the answer and the kept connection, the real answer
    still unread, went back to the pool: the next client read the previous one's answer."""

    def interim_first(target: str, headers: dict[str, str], body: bytes) -> bytes:
        early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
        return early + echo_key(target, headers, body)

    with RawUpstream(interim_first) as up, guard_on(up) as (c, _g):
        port = c.base_url.port
        for i in range(5):  # attacker and victim alternate on the one kept connection
            key = [("x-api-key", f"attacker-{i}"), ("expect", "100-continue")]
            interim, status, body = exchange(port, "POST", "/predict", key, b'{"vector":[1]}')
            assert interim == [100] and status == 200  # the 100 is the guard's own
            assert json.loads(body)["for"] == f"attacker-{i}"
            got = c.post("/predict", json={"vector": [2]}, headers={"X-API-Key": f"victim-{i}"})
            assert got.status_code == 200 and got.json()["for"] == f"victim-{i}"
    assert all("expect" not in h for _, _, h, _ in up.requests)  # never forwarded
    # kept connections were reused across clients (idle ones older than 3 s are not, so on a
    # stalled machine there may be more than one): every answer above was read whole
    assert up.connections < len(up.requests)


def test_expect_against_the_real_api_never_reaches_another_client(upstream: str, loan: Any) -> None:
    """Row 1 as reported: ``mlhunt serve`` behind the guard, an unauthenticated request with
    ``Expect: 100-continue``, then a client with a valid key, then the attacker again."""
    body = json.dumps({"vector": [float(v) for v in loan.x_holdout[0]]}).encode()
    with guarded(GuardConfig(upstream=upstream, warmup=10_000)) as (c, _g):
        port = c.base_url.port
        json_type = ("content-type", "application/json")
        for _ in range(3):
            expect = [json_type, ("expect", "100-continue")]
            _, status, _ = exchange(port, "POST", "/predict", expect, body)
            assert status == 401
            victim = c.post("/predict", json=json.loads(body), headers={"X-API-Key": "sim-alice"})
            assert victim.status_code == 200 and len(victim.json()["scores"]) == 2
            _, again, answer = exchange(port, "POST", "/predict", [json_type], body)
            assert again == 401 and b"scores" not in answer


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc", False),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            False,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1_0\r\n\r\n0123456789", False),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", False),
        (b"HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok", True),  # no reason phrase: valid
        (b"HTTP/1.1 200 OK\r\n\r\nuntil-eof", True),  # no length: read to the end
    ],
)
def test_upstream_framing_is_strict(answer: bytes, ok: bool) -> None:
    """Row 12: duplicate Content-Length (last won), CL with TE, ``1_0`` as a length and bad
    chunk sizes were accepted; a status line without a reason raised IndexError (500)."""
    close_after = b"content-length" not in answer and b"chunked" not in answer
    with RawUpstream(lambda *_a: answer, close_after=close_after) as up, guard_on(up) as (c, _g):
        r = c.get("/x")
        if ok:
            assert r.status_code == 200 and r.content in (b"ok", b"until-eof")
        else:
            assert r.status_code == 502 and "upstream unavailable" in r.json()["detail"]
        assert c.get("/x").status_code == r.status_code  # and nothing carried over


def test_bytes_after_an_answer_never_reach_the_next_client() -> None:
    """Row 1/12: an upstream writing more than one answer's worth: the extra bytes are never
    read as the next client's answer (the connection is closed, not pooled)."""
    n = [0]

    def two_answers(target: str, headers: dict[str, str], body: bytes) -> bytes:
        n[0] += 1
        smuggled = framed(b"200 OK", b'{"for":"someone-else"}')
        return echo_key(target, headers, body) + (smuggled if n[0] == 1 else b"")

    with RawUpstream(two_answers) as up, guard_on(up) as (c, _g):
        for who in ("first", "second", "third"):
            r = c.get("/x", headers={"X-API-Key": who})
            assert r.status_code == 200 and r.json()["for"] == who
    conns = [n for n, *_ in up.requests]
    assert conns[1] != conns[0]  # the connection with bytes after the answer was not reused


def test_connection_named_headers_are_hop_by_hop() -> None:
    """Row 12: headers named in ``Connection:`` are dropped both ways (RFC 9110 7.6.1)."""

    def answer(target: str, headers: dict[str, str], body: bytes) -> bytes:
        return framed(
            b"200 OK", json.dumps(headers).encode(), b"x-internal: 1", b"connection: x-internal"
        )

    with RawUpstream(answer) as up, guard_on(up) as (c, _g):
        r = c.get("/x", headers={"connection": "keep-alive, x-hop", "x-hop": "secret"})
        assert r.status_code == 200 and "x-internal" not in r.headers
        assert "x-hop" not in r.json() and "connection" not in r.json()


def test_request_and_answer_sizes_are_capped() -> None:
    """Row 5: a body over ``max_body_bytes`` is refused before it is forwarded (413, without
    a 100 Continue first), an answer over ``max_answer_bytes`` is not buffered (502)."""
    big = framed(b"200 OK", b"x" * (3 << 20))

    def answer(target: str, headers: dict[str, str], body: bytes) -> bytes:
        return big if target == "/big" else echo_key(target, headers, body)

    with (
        RawUpstream(answer) as up,
        guard_on(up, max_body_bytes=64 << 10, max_answer_bytes=1 << 20) as (c, g),
    ):
        assert c.post("/predict", content=b"1" * (65 << 10)).status_code == 413
        port = c.base_url.port
        interim, status, _ = exchange(
            port, "POST", "/predict", [("expect", "100-continue")], b"1" * (65 << 10)
        )
        assert status == 413 and interim == []
        assert c.post("/predict", content=b"1" * (60 << 10)).status_code == 200
        r = c.get("/big")
        assert r.status_code == 502 and "too large" in r.json()["detail"]
        assert g.worker.wait_idle()
    assert [t for _, t, _, _ in up.requests] == ["/predict", "/big"]


def test_a_partial_head_is_dropped_and_a_huge_head_refused() -> None:
    """Row 8: a partial head held its connection open (24 s and counting); a 1 MB head was
    forwarded. Served as deployed (``uvicorn_config``): head and body deadlines, head size
    cap."""
    import uvicorn

    from mlhunt.guard import create_guard_app
    from mlhunt.guard.server import uvicorn_config

    with RawUpstream(echo_key) as up:
        cfg = GuardConfig(upstream=up.url, warmup=10_000, header_timeout_s=1.0, body_timeout_s=1.0)
        app = create_guard_app(cfg)
        server = uvicorn.Server(uvicorn_config(app, port=0))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
                s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                started = time.monotonic()
                assert s.recv(1024) == b""  # closed by the guard, well before the 15 s bound
                assert time.monotonic() - started < 10
            with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
                s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12")
                started = time.monotonic()
                assert s.recv(1024) == b""  # the body's deadline: closed, never forwarded
                assert time.monotonic() - started < 10
            with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
                s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")
                with pytest.raises(OSError):  # the guard may close while we still write
                    for _ in range(64):
                        s.sendall(b"X-Big: " + b"a" * (16 << 10) + b"\r\n")
                    s.sendall(b"\r\n")
                    raise OSError("all sent")
                answer = s.recv(1024)
                assert answer.startswith(b"HTTP/1.1 431") or answer == b""
            # a well-behaved client on a kept connection is not cut off between requests
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                assert c.get("/x").status_code == 200
                assert c.get("/x").status_code == 200
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    assert [t for _, t, _, _ in up.requests] == ["/x", "/x"]


def test_upstream_pool_is_bounded() -> None:
    """Row 8: the pool opened a connection per concurrent request, without limit."""

    async def go(url: str) -> list[int]:
        pool = StreamPool(url, 20.0, max_connections=2)
        try:
            got = await asyncio.gather(*(pool.request("GET", f"/{i}", [], b"") for i in range(8)))
        finally:
            await pool.aclose()
        return [a[0] for a in got]

    with RawUpstream(echo_key, delay_s=0.05) as up:
        assert asyncio.run(go(up.url)) == [200] * 8
    assert up.peak <= 2 and len(up.requests) == 8


def test_pool_errors_are_upstream_errors() -> None:
    """A dead or silent upstream is an :class:`UpstreamError`, never another exception."""

    async def go(url: str) -> None:
        pool = StreamPool(url, 1.0)
        with pytest.raises(UpstreamError):
            await pool.request("GET", "/", [], b"")
        await pool.aclose()

    with RawUpstream(lambda *_a: None) as up:  # closes without an answer
        asyncio.run(go(up.url))
