"""``mlhunt`` and ``python -m mlhunt``: a plain ``scan`` or ``model`` starts without the CLI
framework (:mod:`mlhunt.cli_fast`); everything else goes to the typer app of :mod:`mlhunt.cli`."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def main() -> None:
    # OpenMP threads that spin while waiting made a small CNN's training 4-5x slower in wall
    # time on 2 shared cores, with identical results (docs/testing.md); the user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from mlhunt.cli_fast import fast_main

    code = fast_main(sys.argv[1:])
    if code is not None:
        end_process(code)
    from mlhunt.cli import main as cli_main

    cli_main()


def end_process(code: int) -> NoReturn:
    """Exit once a fast-path command is done, without the interpreter's teardown.

    Freeing every module and object (rego-cpp's library included) is ~5% of a whole ``mlhunt
    scan`` of a folder of small files, for nothing: the report is written (``-o`` files are
    written and renamed atomically before this), the HDF5 reader has exited. What a normal exit
    does that matters is done here in its order: non-daemon threads are waited for (by the
    normal exit, when there are any), atexit handlers run, the standard streams are flushed
    (an error there is raised as it always was)."""
    threading = sys.modules.get("threading")
    if threading is not None and any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    ):
        raise SystemExit(code)
    import atexit

    atexit._run_exitfuncs()  # what interpreter shutdown would run; none on the fast path today
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
