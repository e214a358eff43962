"""``mlhunt`` and ``python -m mlhunt``: a plain ``scan`` or ``model`` starts without the CLI
framework (:mod:`mlhunt.cli_fast`); everything else goes to the typer app of :mod:`mlhunt.cli`."""

from __future__ import annotations

import sys


def main() -> None:
    from mlhunt.cli_fast import fast_main

    code = fast_main(sys.argv[1:])
    if code is not None:
        sys.stdout.flush()
        raise SystemExit(code)
    from mlhunt.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
