"""The README's month tables: each shared USD/JPY 2016 month replayed alone, learning vs static.

    .venv/bin/python bench/replay_months.py                  # the six months, one by one
    .venv/bin/python bench/replay_months.py --as-one-run     # the six months as one replay
    .venv/bin/python bench/replay_months.py --months 201601,201602 --out /tmp/months

Runs ``autolearn replay --compare`` per month (a subprocess each: whole-process CPU is what a
user sees), then reads each learning run's history and prints, per month, the P/L table and what
the learners did: every apply with its knob and whether the evidence was the counterfactual
(``cf_improves``) or a rule, and, for the tuner's and scalp trainer's counterfactual knobs, the
most frequent reason they did not move. Reads the candle files from ../shared/data (beside the
repository); says so and exits 0 when they are missing.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from autolearn.adapters.history import HistoryFile

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "fx" / "histdata-calvincouch"
MONTHS = ("201601", "201602", "201603", "201604", "201605", "201606")


def _file(month: str) -> Path:
    return DATA / f"DAT_ASCII_USDJPY_M1_{month}.csv"


def _replay(files: list[Path], out: Path, *, again: bool = True) -> float:
    """Run the comparison; return its whole-process CPU seconds (user + system)."""
    if not again:
        return float("nan")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [str(REPO / ".venv" / "bin" / "autolearn"), "replay", "--compare", "--quiet"]
    for f in files:
        cmd += ["--candles", str(f)]
    subprocess.run([*cmd, "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _summary(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "summary.json").read_text()))


def _learners(run: Path) -> dict[str, Any]:
    """Applies (knob, before -> after, evidence) and why the counterfactual knobs held."""
    applies: list[str] = []
    held: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    # every segment, repeats expanded (the history folds and rotates; its reader undoes both)
    for record in HistoryFile(run / "state" / "history.jsonl").read().records:
        mechanism = record.get("mechanism")
        if mechanism not in ("tuner", "scalp_trainer"):
            continue
        considered = {c.get("knob"): c for c in record.get("considered") or ()}
        if record.get("decision") == "apply" and record.get("applied"):
            for d in record.get("diff") or ():
                rule = considered.get(d["knob"], {}).get("rule", "?")
                source = "counterfactual" if rule == "cf_improves" else f"rule {rule}"
                day = str(record.get("at", record.get("now", "")))[:10]
                applies.append(f"{day} {d['knob']} {d['before']}->{d['after']} ({source})")
        for knob, entry in considered.items():
            code = str(entry.get("code", entry.get("rule")))
            if code == "frozen":  # name what froze it: the record's reasons for this family
                why = [
                    str(r).split(":", 1)[-1]
                    for r in record.get("reasons") or ()
                    if mechanism == "scalp_trainer" or str(r).startswith("micro.entry:")
                ]
                code = f"frozen({'+'.join(sorted(set(why))) or '?'})"
            evaluated = "counterfactual" in entry or str(entry.get("rule", "")).startswith("cf_")
            if evaluated and code not in ("cf_not_due", "cf_held"):  # cadence, not a reason
                held[str(knob)][code] += 1
    return {"applies": applies, "held": {k: v.most_common(3) for k, v in held.items()}}


def _row(name: str, out: Path, cpu_s: float) -> None:
    learning, static = _summary(out / "learning"), _summary(out / "static")

    def cells(s: dict[str, Any]) -> str:
        return (
            f"{s.get('trades')} / {s.get('net_pips'):.1f} / {s.get('net_account'):.2f} / "
            f"{s.get('max_drawdown_account'):.2f}"
        )

    print(f"| {name} | {cells(learning)} | {cells(static)} | {cpu_s:.0f} s |")
    info = _learners(out / "learning")
    for line in info["applies"]:
        print(f"    apply: {line}")
    for knob, codes in info["held"].items():
        print(f"    {knob}: " + ", ".join(f"{code} x{n}" for code, n in codes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--months", default=",".join(MONTHS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/autolearn-months"))
    parser.add_argument("--as-one-run", action="store_true")
    parser.add_argument(
        "--summarize-only", action="store_true", help="re-read runs already in --out"
    )
    args = parser.parse_args(argv)
    months = [m.strip() for m in args.months.split(",") if m.strip()]
    missing = [str(_file(m)) for m in months if not _file(m).exists()]
    if missing:
        print(f"shared data missing, nothing measured: {', '.join(missing)}")
        return 0
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("| month | learning: trades / pips / USD / max DD USD | static: same | CPU |")
    print("|---|---|---|---|")
    start = time.monotonic()
    if args.as_one_run:
        out = args.out / "as-one-run"
        cpu = _replay([_file(m) for m in months], out, again=not args.summarize_only)
        _row("six months as one run", out, cpu)
    else:
        for m in months:
            out = args.out / m
            cpu = _replay([_file(m)], out, again=not args.summarize_only)
            _row(f"{m[:4]}-{m[4:]}", out, cpu)
    print(f"wall {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
