"""``autolearn replay`` (the closed loop on real candles) and ``autolearn report RUN`` (HTML).

The shell: loads candles, shows a progress bar and the summary, prints the replay speed; the
replay itself lives in ``autolearn.replay`` and the page in ``autolearn.report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autolearn.cli._common import app, console, real_console, settings
from autolearn.errors import ConfigError, InputError

__all__ = ["load_replay_candles", "parse_day", "run_and_show", "show_comparison"]

_DEFAULT_MECHANISMS = "policy,tuner,scalp_trainer"
CLOCK_HELP = (
    "The candle files' clock: auto (infer from the week open), utc, utc+2, utc-3:30, new-york, "
    "mt5-server (UTC+2/+3 on US DST), mt5-eet (UTC+2/+3 on EU DST); default: per format"
)


def parse_day(value: str | None, option: str) -> datetime | None:
    """``2018-07-02`` (UTC midnight) or a full timestamp with its zone; None stays None."""
    if value is None:
        return None
    from autolearn.core.timestamps import TimestampError, parse_utc

    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        return parse_utc(text)
    except (ValueError, TimestampError) as exc:
        raise InputError(
            f"{option} {value!r}: expected a date (2018-07-02, read as UTC) or a timestamp with "
            f"its zone (2018-07-02T12:00:00Z)"
        ) from exc


def load_replay_candles(
    paths: Sequence[Path], start: datetime | None, end: datetime | None, clock: str | None = None
) -> Any:
    """Load and merge candle files of one instrument, then keep ``[start, end)``.

    ``clock`` (``--clock``) names the files' clock (see ``load_candles``); None keeps each
    format's default (an MT5 ``Time,Open,...`` export: inferred from its week open).
    """
    import numpy as np  # lazy: the learn extra, only when a replay runs

    from autolearn.backtest import Candles, load_candles
    from autolearn.replay import slice_candles

    if not paths:
        raise InputError("no candle file given: pass --candles PATH (repeatable)")
    loaded = [load_candles(p, clock=clock) for p in paths]
    kinds = {(c.instrument, c.timeframe_s) for c in loaded}
    if len(kinds) != 1:
        raise InputError(
            f"--candles files mix instruments or timeframes {sorted(kinds)}; a replay runs one "
            "instrument at one timeframe"
        )
    if len(loaded) == 1:
        merged = loaded[0]
    else:
        cols = {
            n: np.concatenate([getattr(c, n) for c in loaded])
            for n in ("time_us", "open", "high", "low", "close", "volume")
        }
        order = np.argsort(cols["time_us"], kind="stable")
        t = cols["time_us"][order]
        keep = np.r_[True, t[1:] != t[:-1]]  # overlapping files: the first file's bar wins
        merged = Candles(
            instrument=loaded[0].instrument,
            timeframe_s=loaded[0].timeframe_s,
            source=",".join(str(p) for p in paths),
            **{n: v[order][keep] for n, v in cols.items()},
        )
    sliced = slice_candles(merged, start, end)
    if len(sliced) < 2:
        raise InputError(
            f"only {len(sliced)} bars between --from and --to in {', '.join(map(str, paths))}"
        )
    return sliced


def _mechanisms(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    from autolearn.replay import KNOWN_MECHANISMS

    unknown = [m for m in names if m not in KNOWN_MECHANISMS]
    if unknown:
        raise ConfigError(f"--mechanisms: unknown {unknown}; known: {', '.join(KNOWN_MECHANISMS)}")
    return names


def run_and_show(
    candles: Any, run_dir: Path, config: Any, *, label: str, quiet: bool = False
) -> Any:
    """Run one replay with a progress bar; print its speed line; return the outcome."""
    from autolearn.replay import run_replay

    registry = settings().registry()
    mechanisms = ", ".join(config.mechanisms) or "none (static)"
    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        console=real_console(),
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=len(candles))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        outcome = run_replay(candles, run_dir, config, registry, progress=progress)
    cycles = ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(outcome.cycle_ms.items()))
    console.print(
        f"{label}: {len(candles):,} bars in {outcome.wall_s:.1f} s "
        f"([bold]{outcome.bars_per_s:,.0f} bars/s[/], mechanisms: {mechanisms}"
        + (f"; mean cycle: {cycles}" if cycles else "")
        + f") -> {run_dir}"
    )
    return outcome


def show_comparison(learning: dict[str, Any], static: dict[str, Any]) -> None:
    """Print the side-by-side table of ``replay --compare``."""
    from autolearn.replay import comparison_rows

    table = Table(title="auto-learning on vs static presets", title_justify="left")
    table.add_column("")
    table.add_column("learning", justify="right")
    table.add_column("static", justify="right")
    for row in comparison_rows(learning, static):
        table.add_row(*row)
    console.print(table)


def _summary_table(summary: dict[str, Any], title: str) -> None:
    from autolearn.replay import comparison_rows

    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value, _ in comparison_rows(summary, summary):
        table.add_row(name, value)
    console.print(table)


@app.command()
def replay(
    candles: Annotated[
        list[Path], typer.Option("--candles", help="Candle file (repeat for more months)")
    ],
    start: Annotated[str | None, typer.Option("--from", help="First bar (UTC date)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (UTC date)")] = None,
    mechanisms: Annotated[
        str, typer.Option(help="Mechanisms to run, comma-separated")
    ] = _DEFAULT_MECHANISMS,
    static: Annotated[bool, typer.Option(help="Auto-learning off (presets only)")] = False,
    compare: Annotated[bool, typer.Option(help="Run learning and static, compare")] = False,
    out: Annotated[Path, typer.Option(help="Output dir (git-ignored by default)")] = Path(
        "logs/replay"
    ),
    name: Annotated[str | None, typer.Option(help="Run name (default learning/static)")] = None,
    spread_pips: Annotated[float, typer.Option(help="Fixed spread of the paper broker")] = 0.8,
    units: Annotated[int, typer.Option(help="Units per entry before the gates' size")] = 10_000,
    gates_config: Annotated[
        Path | None, typer.Option(help="The bot's tracked gates.yaml (default: packaged)")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
    clock: Annotated[str | None, typer.Option(help=CLOCK_HELP)] = None,
) -> None:
    """Replay real candles through strategies, gates, paper broker, ledger and mechanisms."""
    from autolearn.replay import ReplayConfig

    bars = load_replay_candles(
        candles, parse_day(start, "--from"), parse_day(end, "--to"), clock=clock
    )
    chosen = _mechanisms(mechanisms)
    common: dict[str, Any] = {
        "spread_pips": spread_pips,
        "units": units,
        "gates_config": gates_config,
    }
    if compare:
        learn = run_and_show(
            bars,
            out / "learning",
            ReplayConfig(mechanisms=chosen, **common),
            label="learning",
            quiet=quiet,
        )
        still = run_and_show(
            bars, out / "static", ReplayConfig(mechanisms=(), **common), label="static", quiet=quiet
        )
        show_comparison(learn.summary, still.summary)
        console.print(f"report: autolearn report {out}")
        return
    config = ReplayConfig(mechanisms=() if static else chosen, **common)
    run_name = name or ("static" if static else "learning")
    outcome = run_and_show(bars, out / run_name, config, label=run_name, quiet=quiet)
    _summary_table(outcome.summary, f"replay {run_name}")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="A replay output dir (or one run dir)")],
    output: Annotated[
        Path | None, typer.Option(help="HTML file to write (default RUN/report.html)")
    ] = None,
) -> None:
    """Write one self-contained HTML report (equity, knobs, blocks, verdicts, records)."""
    from autolearn.report import build_report

    path = build_report(run, output)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")
