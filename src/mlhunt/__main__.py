"""``mlhunt`` and ``python -m mlhunt``: a plain ``scan`` starts without the CLI framework
(:mod:`mlhunt.cli_scan`); everything else goes to the typer app of :mod:`mlhunt.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    from mlhunt.cli_scan import fast_scan

    code = fast_scan(sys.argv[1:])
    if code is not None:
        sys.stdout.flush()
        raise SystemExit(code)
    from mlhunt.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
