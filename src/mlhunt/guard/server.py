"""How ``mlhunt guard`` is served: uvicorn on uvloop and httptools, one ``send`` per answer.

Measured on the 2-core VM (``python -m bench.guard_cpu``), the proxy's CPU per request is mostly
the HTTP machinery and system calls (~0.1 ms per loopback ``send`` there), not the guard's own
logic, so:

- httptools (C parser) instead of h11 (pure Python), uvloop instead of the asyncio loop;
- uvicorn writes an answer's head and its body with two ``transport.write`` calls, i.e. two
  ``send`` system calls; :class:`OneWriteProtocol` joins what one step of the event loop writes
  on a connection into one ``send`` (the head and the body of a response, written back to back);
- uvicorn's proxy-headers rewriting is off: the guard itself decides whether
  ``X-Forwarded-For`` is trusted (``GuardConfig.trust_forwarded``), and uvicorn's default
  (trust it from 127.0.0.1) would let a local caller choose its own source address.

Bounded: a request head must arrive within ``header_timeout_s`` of the
connection or of the previous answer, and its body within ``body_timeout_s`` of the head (else
the connection is closed: a client trickling a partial request holds nothing for long; one
timer per connection, re-armed, cheaper than a timeout around each read in the app), and a head
within ``max_header_bytes`` (else 431 and close);
at most ``max_connections`` connections and requests at once (uvicorn's ``limit_concurrency``:
503 beyond). The limits come from the app's :class:`~mlhunt.guard.config.GuardConfig`.

Without httptools or uvloop installed, uvicorn's defaults are used.
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass
from typing import Any


class _OneWrite:
    """A connection's transport whose writes are held until the end of the current step of the
    event loop and then sent together; everything else is the transport's own."""

    __slots__ = ("_buf", "_loop", "_t")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._t = transport
        self._loop = loop
        self._buf: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._buf:
            self._loop.call_soon(self._flush)
        self._buf.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if not self._buf:
            return
        data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
        self._buf.clear()
        if not self._t.is_closing():
            self._t.write(data)

    def close(self) -> None:
        self._flush()  # what was written before close still goes out, as with the transport
        self._t.close()

    def write_eof(self) -> None:
        self._flush()
        self._t.write_eof()

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self._buf)) + self._t.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


@dataclass(frozen=True)
class Limits:
    """What one client connection may hold (see the module docstring)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    body_timeout_s: float = 30.0


class _HeadTooLarge(Exception):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class OneWriteProtocol(HttpToolsProtocol):
        """httptools protocol writing through :class:`_OneWrite`, with a deadline and a size
        cap for each request head."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._limits: Limits = getattr(self.config, "mlhunt_limits", None) or Limits()
            self._head = 0
            self._too_large = False
            self._head_timer: asyncio.TimerHandle | None = None
            super().connection_made(_OneWrite(transport, self.loop))  # type: ignore[arg-type]
            self._arm()

        def _arm(self, seconds: float | None = None) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    seconds or self._limits.header_timeout_s, self._head_timeout
                )

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            self._head = 0
            self._arm()
            super().on_message_begin()

        def _count(self, n: int) -> None:
            self._head += n
            if self._head > self._limits.max_header_bytes:
                self._too_large = True
                raise _HeadTooLarge

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            self._arm(self._limits.body_timeout_s)  # the body, if any, has its own deadline

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next head, if any, has the same deadline

        def send_400_response(self, msg: str) -> None:
            if not self._too_large:
                super().send_400_response(msg)
                return
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    PROTOCOL: type[asyncio.Protocol] | str = OneWriteProtocol
except ImportError:  # no httptools: uvicorn's own choice
    PROTOCOL = "auto"


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8080, **kw: Any) -> Any:
    """The ``uvicorn.Config`` the guard is served with (see the module docstring)."""
    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "auto"
    guard = getattr(getattr(app, "state", None), "guard", None)
    gc = guard.config if guard is not None else None
    if gc is not None:
        kw.setdefault("limit_concurrency", gc.max_connections)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        http=PROTOCOL,
        proxy_headers=False,
        log_level="warning",
        access_log=False,
        **kw,
    )
    if gc is not None:  # read by OneWriteProtocol (uvicorn passes its Config to each protocol)
        limits = Limits(gc.header_timeout_s, gc.max_header_bytes, gc.body_timeout_s)
        config.mlhunt_limits = limits  # type: ignore[attr-defined]
    return config
