"""A throw-away PostgreSQL server for tests (real server, no mocks).

``postgres_url`` (a session fixture) yields a ``postgresql+psycopg://`` URL:

* ``$MLHUNT_TEST_POSTGRES_URL`` when set (an existing server the test may write tables to);
* otherwise a temporary cluster made with ``initdb`` and started with ``pg_ctl`` from the
  PostgreSQL server binaries (on PATH, or Debian's ``/usr/lib/postgresql/<major>/bin``; Debian
  package ``postgresql``), listening on a free loopback port with its socket in the temporary
  folder, stopped and deleted at teardown. As root (``initdb`` refuses root) the cluster runs as
  the ``postgres`` system user via ``runuser``.

When none of that is possible the dependent tests are skipped with the reason. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV_URL = "MLHUNT_TEST_POSTGRES_URL"
START_TIMEOUT = 60
STOP_TIMEOUT = 30


class PostgresUnavailable(Exception):
    """Why no PostgreSQL server can be started here (becomes the skip reason)."""


def find_bindir() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent

    def major(path: str) -> float:
        try:
            return float(Path(path).parent.parent.name)
        except ValueError:
            return 0.0

    for pg_ctl in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=major, reverse=True):
        if Path(pg_ctl).with_name("initdb").is_file():
            return Path(pg_ctl).parent
    raise PostgresUnavailable(
        "no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin "
        "(Debian/Ubuntu: apt-get install postgresql)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> tuple[list[str], tuple[int, int] | None]:
    """Command prefix and (uid, gid) to own the cluster files, when running as root."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root (initdb refuses) and there is no 'postgres' user"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root and no runuser to drop to the postgres user")
    return [runuser, "-u", "postgres", "--"], (pw.pw_uid, pw.pw_gid)


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _wait_ready(url: str, timeout: float) -> None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"server did not accept connections: {exc}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a private PostgreSQL cluster; yield its SQLAlchemy URL; stop and delete it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("the psycopg package is not installed") from None
    bindir = find_bindir()
    prefix, owner = _as_user()
    # A short path: the server's unix socket path must stay under ~100 characters.
    root = Path(tempfile.mkdtemp(prefix="mlhunt-pg-"))
    data, sockdir, logfile = root / "data", root / "sock", root / "server.log"
    sockdir.mkdir()
    if owner is not None:
        for p in (root, sockdir):
            os.chown(p, *owner)
    port = _free_port()
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        init = _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "mlhunt",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            timeout=START_TIMEOUT,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(init.stderr or init.stdout).strip()}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = _run(
            [*pg_ctl, "-l", str(logfile), "-o", options, "-w", "-t", str(START_TIMEOUT), "start"],
            timeout=START_TIMEOUT + 10,
        )
        started = True
        if start.returncode != 0:
            log = logfile.read_text(errors="replace")[-500:] if logfile.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()} {log}")
        url = f"postgresql+psycopg://mlhunt@127.0.0.1:{port}/postgres"
        _wait_ready(url, timeout=START_TIMEOUT)
        yield url
    finally:
        if started:
            stop = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                stop = _run([*pg_ctl, "-m", "fast", "-w", "-t", str(STOP_TIMEOUT), "stop"], 40)
            if stop is None or stop.returncode != 0:
                _kill_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl stop failed: SIGKILL the server whose pid is in its pid file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL for SQLAlchemy (see the module docstring); skips with the reason."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    try:
        cm = temporary_postgres()
        url = cm.__enter__()
    except (PostgresUnavailable, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield url
    finally:
        cm.__exit__(None, None, None)
