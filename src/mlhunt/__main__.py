"""``mlhunt`` and ``python -m mlhunt``: a plain ``scan`` or ``model`` starts without the CLI
framework (:mod:`mlhunt.cli_fast`); everything else goes to the typer app of :mod:`mlhunt.cli`."""

from __future__ import annotations

import os
import sys


def main() -> None:
    # OpenMP threads that spin while waiting made a small CNN's training 4-5x slower in wall
    # time on 2 shared cores, with identical results (docs/testing.md); the user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from mlhunt.cli_fast import fast_main

    code = fast_main(sys.argv[1:])
    if code is not None:
        sys.stdout.flush()
        raise SystemExit(code)
    from mlhunt.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
