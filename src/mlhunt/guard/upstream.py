"""The guard's client to the upstream API: a small HTTP/1.1 keep-alive pool on asyncio streams,
its answers framed by httptools (llhttp, the C parser the guard's server side uses too).

Why not httpx here: on the proxy path every microsecond is added latency, and a general client
spends hundreds of microseconds per request on machinery a loopback or in-cluster hop to one
upstream does not need (measured in bench/guard.py; h11 alone costs ~0.13 ms per exchange on the
2-core VM, httptools ~0.01 ms). The pool never frames bytes by hand: llhttp refuses
duplicate or malformed ``Content-Length``, ``Content-Length`` with ``Transfer-Encoding`` and bad
chunk sizes; interim ``1xx`` answers are skipped, never taken as the answer; a connection goes
back to the pool only when its answer ended exactly at the last byte read and the upstream
keeps it alive, so the next client can never read the rest of someone else's answer.
Bounded: ``max_connections`` open at once (callers wait for a slot within the timeout), answer
heads up to ``MAX_HEAD_BYTES`` and bodies up to ``max_answer_bytes``.
``https://`` upstreams use httpx (:class:`HttpxUpstream`), with the same bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import httptools

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one answer
READ = 64 * 1024


class UpstreamError(Exception):
    """The upstream did not answer (connection refused, reset, timeout, malformed or too large
    answer)."""


class Upstream(Protocol):
    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer: ...

    async def aclose(self) -> None: ...


class _Answer:
    """httptools callbacks for one exchange: the final answer's status, headers and body."""

    __slots__ = (
        "body",
        "done",
        "final",
        "headers",
        "interim",
        "keep",
        "limit",
        "parser",
        "size",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parser: Any = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.done = False  # the final answer is complete
        self.interim = False  # the message being parsed is a 1xx
        self.final = False  # the final answer's head is complete
        self.keep = False  # the upstream keeps the connection open after it

    def on_message_begin(self) -> None:
        if self.done:  # bytes after the answer: the connection is not reusable
            raise _Trailing
        self.headers, self.body, self.size = [], [], 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def framed(self) -> bool:
        """The answer states its length (Content-Length or Transfer-Encoding)."""
        return any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.headers)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:
            raise UpstreamError("upgrade answers are not proxied")
        self.interim = 100 <= status < 200
        self.final = not self.interim

    def on_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise UpstreamError("answer too large")
        self.body.append(data)

    def on_message_complete(self) -> None:
        if self.interim:  # 100 Continue, 103 Early Hints: the real answer follows
            self.interim = False
            return
        self.done = True
        self.keep = self.parser.should_keep_alive()  # only valid until the next message


class _Trailing(Exception):
    pass


#: a kept connection: its streams, and the parser (with its callbacks) reading its answers
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, _Answer, Any]


class _Stale(Exception):
    pass


class StreamPool:
    def __init__(
        self,
        url: str,
        timeout: float,
        max_idle: int = 64,
        idle_s: float = 3.0,
        max_connections: int = 256,
        max_answer_bytes: int = 16 << 20,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.authority = parts.netloc
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.max_idle = max_idle
        self.max_answer_bytes = max_answer_bytes
        # kept connections idle longer than this are dropped, not reused: servers close idle
        # keep-alive connections (uvicorn after 5 s), and a closed one fails on first use
        self.idle_s = idle_s
        self._idle: list[tuple[Conn, float]] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.opened = 0  # connections opened so far (tests and metrics)

    def _take(self) -> Conn | None:
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if now - since < self.idle_s and not conn[0].at_eof() and not _buffered(conn[0]):
                return conn
            _close(conn)
        return None

    def _open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Conn:
        """A new connection with its own parser, kept with it (a parser's first message costs
        more than the next ones: measured ~3x)."""
        self.opened += 1
        got = _Answer(self.max_answer_bytes)
        got.parser = httptools.HttpResponseParser(got)
        return reader, writer, got, got.parser

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        head = [f"{method} {self.base}{target} HTTP/1.1", f"host: {self.authority}"]
        head += [f"{k}: {v}" for k, v in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"content-length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            # asyncio.timeout, not wait_for: wait_for runs the exchange as one more task
            async with asyncio.timeout(self.timeout), self._slots:
                for attempt in (0, 1):
                    conn = self._take() if attempt == 0 else None  # the retry: a new one
                    reused = conn is not None
                    try:
                        if conn is None:
                            conn = self._open(*await asyncio.open_connection(self.host, self.port))
                        return await self._exchange(conn, data, method)
                    except _Stale:
                        _close(conn)
                        if attempt == 0 and reused:
                            continue  # the upstream dropped an idle kept connection: once more
                        raise UpstreamError("connection closed") from None
                    except BaseException:
                        _close(conn)
                        raise
        except UpstreamError:
            raise
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            raise UpstreamError(type(exc).__name__) from None
        raise UpstreamError("connection closed")  # pragma: no cover

    async def _exchange(self, conn: Conn, data: bytes, method: str) -> Answer:
        reader, writer, got, parser = conn
        got.done = got.final = got.keep = False  # the parser waits for the next answer
        try:  # nothing of the answer read yet: a failure here is a dead idle connection
            writer.write(data)
            if writer.transport.get_write_buffer_size() > 1 << 16:  # else nothing to wait for
                await writer.drain()
            chunk = await reader.read(READ)
        except OSError:
            raise _Stale from None
        if not chunk:
            raise _Stale
        read = 0
        reusable = True
        while True:
            read += len(chunk)
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                raise UpstreamError("upgrade answers are not proxied") from None
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__ or exc.__cause__
                if isinstance(cause, UpstreamError):
                    raise cause from None
                if not isinstance(cause, _Trailing):
                    raise
                reusable = False  # bytes after the answer: never pooled
            if got.done:
                break
            if method == "HEAD" and got.final:
                break  # no body follows a HEAD answer: llhttp cannot be told, so not reused
            if not got.body and read > MAX_HEAD_BYTES:
                raise UpstreamError("answer head too large")
            chunk = await reader.read(READ)
            if not chunk:  # EOF: only an answer without a stated length ends this way
                if got.final and not got.framed():
                    reusable = False
                    break
                raise UpstreamError("connection closed mid-answer")
        if method == "HEAD":
            reusable = False
        status = parser.get_status_code()
        if (
            reusable
            and got.done
            and got.keep
            and len(self._idle) < self.max_idle
            and not _buffered(reader)
        ):
            self._idle.append((conn, time.monotonic()))
        else:
            _close(conn)
        body = got.body[0] if len(got.body) == 1 else b"".join(got.body)
        return status, got.headers, body

    async def aclose(self) -> None:
        while self._idle:
            _close(self._idle.pop()[0])

    @asynccontextmanager
    async def stream(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> AsyncIterator[Streamed]:
        """The answer's status and headers, its body as it arrives (``Streamed.chunks``):
        for answers that are streams (server-sent events). Same framing, bounds and pooling as
        :meth:`request`; the head must come within the timeout, then each read of the body
        within the timeout (a stream may last longer than one)."""
        head = [f"{method} {self.base}{target} HTTP/1.1", f"host: {self.authority}"]
        head += [f"{k}: {v}" for k, v in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"content-length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(self.timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamError("TimeoutError") from None
        conn: Conn | None = None
        got: Streamed | None = None
        try:
            for attempt in (0, 1):
                conn = self._take() if attempt == 0 else None
                reused = conn is not None
                try:
                    async with asyncio.timeout(self.timeout):
                        if conn is None:
                            conn = self._open(*await asyncio.open_connection(self.host, self.port))
                        got = await self._head(conn, data, method)
                    break
                except _Stale:
                    _close(conn)
                    conn = None
                    if attempt == 0 and reused:
                        continue
                    raise UpstreamError("connection closed") from None
            assert got is not None and conn is not None
            yield got
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            _close(conn)
            conn = None
            raise UpstreamError(type(exc).__name__) from None
        finally:
            if conn is not None:
                if got is not None and got.reusable():
                    self._idle.append((conn, time.monotonic()))
                else:
                    _close(conn)
            self._slots.release()

    async def _head(self, conn: Conn, data: bytes, method: str) -> Streamed:
        reader, writer, got, parser = conn
        got.done = got.final = got.keep = False
        try:
            writer.write(data)
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()
            chunk = await reader.read(READ)
        except OSError:
            raise _Stale from None
        if not chunk:
            raise _Stale
        out = Streamed(self, conn, method)
        read = 0
        while True:
            read += len(chunk)
            out.feed(chunk)
            if got.final or got.done:
                break
            if read > MAX_HEAD_BYTES:
                raise UpstreamError("answer head too large")
            chunk = await reader.read(READ)
            if not chunk:
                raise UpstreamError("connection closed mid-answer")
        out.status = parser.get_status_code()
        out.headers = got.headers
        return out


class Streamed:
    """One streamed answer of :meth:`StreamPool.stream`: ``status``, ``headers`` (as sent),
    and :meth:`chunks`, the body as llhttp frames it, bounded by the pool's answer size."""

    def __init__(self, pool: StreamPool, conn: Conn, method: str) -> None:
        self.pool, self.conn, self.method = pool, conn, method
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailing = False  # bytes after the answer: never pooled
        self.eof = False

    def feed(self, chunk: bytes) -> None:
        parser = self.conn[3]
        try:
            parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            raise UpstreamError("upgrade answers are not proxied") from None
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            if isinstance(cause, UpstreamError):
                raise cause from None
            if not isinstance(cause, _Trailing):
                raise
            self.trailing = True

    def _take_body(self) -> bytes:
        got = self.conn[2]
        out = b"".join(got.body)
        got.body.clear()
        return out

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (each read within the pool's timeout)."""
        got, reader = self.conn[2], self.conn[0]
        first = self._take_body()
        if first:
            yield first
        if self.method == "HEAD":
            return
        while not got.done:
            async with asyncio.timeout(self.pool.timeout):
                chunk = await reader.read(READ)
            if not chunk:
                if got.final and not got.framed():
                    self.eof = True
                    return
                raise UpstreamError("connection closed mid-answer")
            self.feed(chunk)
            part = self._take_body()
            if part:
                yield part

    def reusable(self) -> bool:
        got, reader = self.conn[2], self.conn[0]
        return (
            self.method != "HEAD"
            and not self.trailing
            and not self.eof
            and got.done
            and got.keep
            and len(self.pool._idle) < self.pool.max_idle
            and not _buffered(reader)
        )


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes received and not yet read (asyncio keeps no public count): a kept connection
    holding any is never reused."""
    return len(getattr(reader, "_buffer", b""))


def _close(conn: Conn | None) -> None:
    if conn is not None:
        conn[1].close()


class HttpxUpstream:
    """``https://`` (or anything the stream pool does not speak): httpx, with the same bounds
    (connections, answer size)."""

    def __init__(
        self, url: str, timeout: float, max_connections: int = 256, max_answer_bytes: int = 16 << 20
    ) -> None:
        import httpx

        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(64, max_connections)
        )
        self.max_answer_bytes = max_answer_bytes
        self.client: Any = httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        import httpx

        try:
            req = self.client.build_request(method, target, headers=headers, content=body)
            r = await self.client.send(req, stream=True)
            try:
                parts, size = [], 0
                async for part in r.aiter_bytes():  # decoded: content-encoding is undone
                    size += len(part)
                    if size > self.max_answer_bytes:
                        raise UpstreamError("answer too large")
                    parts.append(part)
            finally:
                await r.aclose()
        except httpx.HTTPError as exc:
            raise UpstreamError(type(exc).__name__) from None
        kept = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in r.headers.items()
            if k.lower() != "content-encoding"
        ]
        return r.status_code, kept, b"".join(parts)

    @asynccontextmanager
    async def stream(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> AsyncIterator[HttpxStreamed]:
        """As :meth:`StreamPool.stream`, over httpx (``https://`` upstreams)."""
        import httpx

        try:
            req = self.client.build_request(method, target, headers=headers, content=body)
            r = await self.client.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(type(exc).__name__) from None
        try:
            yield HttpxStreamed(r, self.max_answer_bytes)
        except httpx.HTTPError as exc:
            raise UpstreamError(type(exc).__name__) from None
        finally:
            await r.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpxStreamed:
    """One streamed answer over httpx: ``status``, ``headers`` (less ``content-encoding``:
    httpx decodes the body), :meth:`chunks` bounded by ``limit`` bytes."""

    def __init__(self, r: Any, limit: int) -> None:
        self.r, self.limit = r, limit
        self.status: int = r.status_code
        self.headers = [
            (k.lower(), v) for k, v in r.headers.raw if k.lower() != b"content-encoding"
        ]

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        async for part in self.r.aiter_bytes():
            size += len(part)
            if size > self.limit:
                raise UpstreamError("answer too large")
            yield part


def make_upstream(
    url: str, timeout: float, max_connections: int = 256, max_answer_bytes: int = 16 << 20
) -> Upstream:
    if url.startswith("http://"):
        return StreamPool(
            url, timeout, max_connections=max_connections, max_answer_bytes=max_answer_bytes
        )
    return HttpxUpstream(url, timeout, max_connections, max_answer_bytes)
