"""The guard's client to the upstream API: a small HTTP/1.1 keep-alive pool on asyncio streams.

Why not httpx here: on the proxy path every microsecond is added latency, and a general client
spends hundreds of microseconds per request on machinery a loopback or in-cluster hop to one
upstream does not need (measured in bench/guard.py). This pool speaks plain HTTP/1.1 to one
``http://`` origin: Content-Length and chunked bodies, keep-alive, one retry on a connection the
upstream closed while idle (before any byte of the answer came back). ``https://`` upstreams
use httpx (:class:`HttpxUpstream`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

Answer = tuple[int, list[tuple[str, str]], bytes]


class UpstreamError(Exception):
    """The upstream did not answer (connection refused, reset, timeout, malformed answer)."""


class Upstream(Protocol):
    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer: ...

    async def aclose(self) -> None: ...


class StreamPool:
    def __init__(self, url: str, timeout: float, max_idle: int = 64, idle_s: float = 3.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.authority = parts.netloc
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.max_idle = max_idle
        # kept connections idle longer than this are dropped, not reused: servers close idle
        # keep-alive connections (uvicorn after 5 s), and a closed one fails on first use
        self.idle_s = idle_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < self.idle_s and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        head = [f"{method} {self.base}{target} HTTP/1.1", f"host: {self.authority}"]
        head += [f"{k}: {v}" for k, v in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"content-length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            conn = self._take() if attempt == 0 else None  # the retry: a new connection
            reused = conn is not None
            try:
                # asyncio.timeout, not wait_for: wait_for runs the exchange as one more task
                async with asyncio.timeout(self.timeout):
                    if conn is None:
                        conn = await asyncio.open_connection(self.host, self.port)
                    return await self._exchange(conn, data, method)
            except _Stale:
                _close(conn)
                if attempt == 0 and reused:
                    continue  # the upstream dropped an idle keep-alive connection: once more
                raise UpstreamError("connection closed") from None
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as exc:
                _close(conn)
                raise UpstreamError(type(exc).__name__) from None
        raise UpstreamError("connection closed")  # pragma: no cover

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes, method: str
    ) -> Answer:
        reader, writer = conn
        try:  # nothing of the answer read yet: a failure here is a dead idle connection
            writer.write(data)
            if writer.transport.get_write_buffer_size() > 1 << 16:  # else nothing to wait for
                await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Stale from None
            raise
        except OSError:
            raise _Stale from None
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        length: int | None = None
        chunked = close = False
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            lk = k.lower()
            if lk == "content-length":
                length = int(v)
            elif lk == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            elif lk == "connection" and v.lower() == "close":
                close = True
            headers.append((k, v))
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = await _chunks(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body, close = await reader.read(), True
        if close or len(self._idle) >= self.max_idle:
            _close(conn)
        else:
            self._idle.append((reader, writer, time.monotonic()))
        return status, headers, body

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


class _Stale(Exception):
    pass


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        conn[1].close()


class HttpxUpstream:
    """``https://`` (or anything the stream pool does not speak): httpx."""

    def __init__(self, url: str, timeout: float) -> None:
        import httpx

        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self.client: Any = httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        import httpx

        try:
            r = await self.client.request(method, target, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise UpstreamError(type(exc).__name__) from None
        # httpx has decoded any content-encoding already
        kept = [(k, v) for k, v in r.headers.items() if k.lower() != "content-encoding"]
        return r.status_code, kept, r.content

    async def aclose(self) -> None:
        await self.client.aclose()


def make_upstream(url: str, timeout: float) -> Upstream:
    return StreamPool(url, timeout) if url.startswith("http://") else HttpxUpstream(url, timeout)
