"""``python -m bench NAME [--quick]``: run one benchmark, print its JSON result last on stdout."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from bench import BENCHMARKS, log, machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=BENCHMARKS, help="benchmark to run (bench/<NAME>.py)")
    parser.add_argument(
        "--quick", action="store_true", help="a small workload, for a smoke run or CI"
    )
    args = parser.parse_args(argv)

    module = importlib.import_module(f"bench.{args.name}")
    log(f"{args.name}: starting ({'quick' if args.quick else 'full'} run)")
    result: dict[str, Any] = module.run(quick=args.quick)
    out = {
        "bench": args.name,
        "machine": machine(),
        "mlhunt": result["mlhunt"],
        "peer": result["peer"],
        "ratio": result["ratio"],
    }
    out.update({k: v for k, v in result.items() if k not in out})
    log(f"{args.name}: done, ratio {out['ratio']}")
    sys.stdout.flush()
    print(json.dumps(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
