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

Without httptools or uvloop installed, uvicorn's defaults are used.
"""

from __future__ import annotations

import asyncio
import importlib.util
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


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class OneWriteProtocol(HttpToolsProtocol):
        """httptools protocol writing through :class:`_OneWrite`."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_OneWrite(transport, self.loop))  # type: ignore[arg-type]

    PROTOCOL: type[asyncio.Protocol] | str = OneWriteProtocol
except ImportError:  # no httptools: uvicorn's own choice
    PROTOCOL = "auto"


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8080, **kw: Any) -> Any:
    """The ``uvicorn.Config`` the guard is served with (see the module docstring)."""
    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "auto"
    return uvicorn.Config(
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
