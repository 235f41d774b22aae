"""Print every figure in ``bench/results.json`` as one table (what ``make bench`` ends with)."""

from __future__ import annotations

import argparse
import json

from bench.common import RESULTS, Figure, print_table


def markdown(figures: list[Figure]) -> str:
    """The figures as a Markdown table (for docs/performance.md)."""
    lines = [
        "| figure | median | min … max | unit | reference, same run | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        ref = f"{f.reference}: {f.reference_median:,.1f}" if f.reference_median else "—"
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
        name, ref = (text.replace("|", "\\|") for text in (f.name, ref))
        lines.append(
            f"| {name} | {f.median:,.1f} | {f.minimum:,.1f} … {f.maximum:,.1f} | {f.unit} "
            f"| {ref} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table instead")
    args = parser.parse_args()
    if not RESULTS.exists():
        raise SystemExit(f"no {RESULTS}: run `make bench` (or one bench script) first")
    stored = json.loads(RESULTS.read_text())
    machine = stored.pop("_machine", {})
    figures = [Figure(**values) for _name, values in sorted(stored.items())]
    if args.markdown:
        print(markdown(figures))
        return
    print_table(figures)
    print(f"{len(figures)} figures in {RESULTS}; machine: {machine}")


if __name__ == "__main__":
    main()
