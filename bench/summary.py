"""Print every figure in ``bench/results.json`` as one table (what ``make bench`` ends with)."""

from __future__ import annotations

import json

from bench.common import RESULTS, Figure, print_table


def main() -> None:
    if not RESULTS.exists():
        raise SystemExit(f"no {RESULTS}: run `make bench` (or one bench script) first")
    stored = json.loads(RESULTS.read_text())
    machine = stored.pop("_machine", {})
    figures = [Figure(**values) for _name, values in sorted(stored.items())]
    print_table(figures)
    print(f"{len(figures)} figures in {RESULTS}; machine: {machine}")


if __name__ == "__main__":
    main()
