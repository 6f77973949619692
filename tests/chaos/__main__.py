"""``python -m tests.chaos [--ci] [--seed N] [--resources N] [--kills N] [--each N] [--only KIND] [--json FILE]``
(``make chaos``).

Prints one line per fault while it runs, then the table (faults by kind, converged, time to converge p50/p99,
duplicates, rows lost, partial schemas, tracebacks) and the same as JSON; exit 1 when any invariant broke.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from tests.chaos.faults import FAULTS
from tests.chaos.run import CI, FULL, main_run, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--ci",
        action="store_true",
        help=f"the bounded run `make test` runs (8 plugins, {sum(CI.faults.values())} faults)",
    )
    parser.add_argument("--seed", type=int, help="seed of the run's RNG (the same seed, the same schedule)")
    parser.add_argument("--resources", type=int, help="ExtensionSchemas reconciled (full run: 50)")
    parser.add_argument("--kills", type=int, help="kill -9 of the operator (full run: 100)")
    parser.add_argument("--each", type=int, help="times each other fault kind strikes (full run: 10)")
    parser.add_argument(
        "--only", action="append", choices=sorted(FAULTS), metavar="KIND", help="inject only this kind (repeatable)"
    )
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--workdir", type=Path, help="keep the logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    config = CI if args.ci else FULL
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.resources is not None:
        config = dataclasses.replace(config, resources=args.resources)
    if args.each is not None:
        config = dataclasses.replace(config, faults=dict.fromkeys(config.faults, args.each))
    if args.kills is not None:
        config = dataclasses.replace(config, faults={**config.faults, "kill -9 operator": args.kills})
    if args.only:
        config = dataclasses.replace(config, faults={k: n for k, n in config.faults.items() if k in args.only})
    result = main_run(config, args.workdir, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(result))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
