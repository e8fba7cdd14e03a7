"""``autolearn demo``: replay the bundled real month with and without learning, then report.

What ``make demo`` runs: one month of EUR/USD M1 (``examples/data/fx``, provenance in
``examples/data/PROVENANCE.md``) through the closed loop twice (auto-learning on / static
presets), the side-by-side comparison, and the path of the HTML report. Writes only under
``--out`` (git-ignored ``demo-output/``), replaced on every run so the demo is deterministic.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from autolearn.cli._common import app, console
from autolearn.cli._replay import load_replay_candles, parse_day, run_and_show, show_comparison
from autolearn.errors import InputError

__all__: list[str] = []

_CANDLES = "fx/DAT_ASCII_EURUSD_M1_201807.csv"


@app.command()
def demo(
    data: Annotated[Path, typer.Option(help="Bundled sample data dir")] = Path("examples/data"),
    out: Annotated[Path, typer.Option(help="Where the demo writes (git-ignored)")] = Path(
        "demo-output"
    ),
    start: Annotated[str | None, typer.Option("--from", help="First bar (UTC date)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (UTC date)")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars")] = False,
) -> None:
    """Replay a real month with and without auto-learning; print the comparison and report."""
    from autolearn.replay import ReplayConfig
    from autolearn.report import build_report

    path = data / _CANDLES
    if not path.exists():
        raise InputError(f"demo data missing: {path} (run from the repo root)")
    began = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)  # a fresh run each time: the demo is deterministic
    candles = load_replay_candles([path], parse_day(start, "--from"), parse_day(end, "--to"))
    console.rule(f"[bold]replay {candles.instrument} M1, {len(candles):,} real bars ({path.name})")
    target = out / "replay"
    learning = run_and_show(
        candles, target / "learning", ReplayConfig(), label="learning", quiet=quiet
    )
    static = run_and_show(
        candles, target / "static", ReplayConfig(mechanisms=()), label="static", quiet=quiet
    )
    console.rule("[bold]auto-learning on vs static presets")
    show_comparison(learning.summary, static.summary)
    page = build_report(target)
    console.print(f"\nreport: {page.resolve()}")
    console.print(f"demo finished in {time.perf_counter() - began:.0f} s")
