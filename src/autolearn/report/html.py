"""``autolearn report RUN``: one self-contained HTML page of a replay (plotly, inlined).

Sections: the learning-vs-static comparison table; why learning won or lost (P/L by pocket and
strategy, the difference charged to each mechanism's decisions, what each block cost or saved:
``autolearn.report.why``); equity curves (account currency) of every run; knob trajectories
with apply / rollback markers; the pocket block timeline (policy statuses) with gate denials
per hour; the judge's verdicts; the run records (consecutive identical records folded into one
row with a count; filtered by mechanism and decision, changes only by default).

``RUN`` is a ``replay --compare`` output directory (``learning/`` and ``static/`` inside) or
one run directory (``ledger.db``, ``state/``, ``summary.json``). The page is deterministic
(fixed element ids, records in file order) and needs no network: plotly.js is inlined once.

An adapter: it reads run artifacts and writes one file; it decides nothing. History records
are read typed (``HistoryFile.read_runs``); unreadable lines are skipped and named on the page.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from autolearn.adapters.history import HistoryFile
from autolearn.core.model import ShadowSignal, Trade
from autolearn.core.run_record import RunRecord, VerdictRecord
from autolearn.core.timestamps import format_utc, parse_utc
from autolearn.errors import InputError
from autolearn.ledger.sql import SqlLedger
from autolearn.replay.summary import comparison_rows
from autolearn.report.attribution import block_intervals
from autolearn.report.why import clip, render_table, why_section

__all__ = ["RunData", "build_report", "find_runs", "load_run"]

_COLORS = {"learning": "#1f77b4", "static": "#7f7f7f"}
_STATUS_COLORS = {"blocked": "#d62728", "probation": "#ff7f0e", "active": "#2ca02c"}
_MARKERS = {
    "apply": ("triangle-up", "#2ca02c"),
    "rollback": ("x", "#d62728"),
    "revert": ("x", "#ff7f0e"),
    "operator": ("diamond", "#9467bd"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunData:
    """One run's artifacts as the report reads them."""

    name: str
    path: Path
    summary: dict[str, Any]
    trades: list[Trade]
    records: list[RunRecord]
    history_problems: tuple[str, ...] = ()  # unreadable history lines, skipped
    signals: list[ShadowSignal] = field(default_factory=list)  # entries denied, with outcomes


def find_runs(root: Path) -> list[Path]:
    """The run directories under ``root`` (itself, or its ``learning`` / ``static`` / others)."""
    if (root / "summary.json").is_file():
        return [root]
    runs = (
        sorted(p for p in root.iterdir() if (p / "summary.json").is_file()) if root.is_dir() else []
    )
    if not runs:
        raise InputError(
            f"{root}: no replay run here (expected summary.json, or run directories such as "
            "learning/ and static/ from `autolearn replay --compare`)"
        )
    order = {"learning": 0, "static": 1}
    return sorted(runs, key=lambda p: (order.get(p.name, 2), p.name))


def load_run(path: Path) -> RunData:
    """Read one run directory (summary, ledger trades, history records)."""
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path / 'summary.json'}: unreadable run summary ({exc})") from exc
    ledger = SqlLedger.open(f"sqlite:///{(path / 'ledger.db').resolve()}")
    try:
        trades = ledger.trades()
        signals = ledger.shadow_signals()
    finally:
        ledger.close()
    history = path / "state" / "history.jsonl"
    records: list[RunRecord] = []
    problems: list[str] = []
    if history.exists():
        read = HistoryFile(history).read_runs()
        records = read.runs
        problems += [f"line {line}: {why}" for line, why in read.malformed]
        problems += [f"line {line}: not JSON" for line in read.corrupt_lines]
        if read.torn_last_line:
            problems.append("last line torn (a crash mid-append)")
    return RunData(
        name=path.name,
        path=path,
        summary=summary,
        trades=trades,
        records=records,
        history_problems=tuple(problems),
        signals=signals,
    )


def _at_text(record: RunRecord) -> str:
    return format_utc(record.at) if record.at is not None else ""


# -- figures ----------------------------------------------------------------------------------
def _equity(runs: Sequence[RunData], currency: str) -> Any:
    import plotly.graph_objects as go  # type: ignore[import-untyped,unused-ignore]

    fig = go.Figure()
    for run in runs:
        xs: list[datetime] = []
        ys: list[float] = []
        total = 0.0
        first = run.summary.get("first_bar")
        if first:
            xs.append(parse_utc(first))
            ys.append(0.0)
        for t in run.trades:
            total += t.pl_account
            xs.append(t.close_at)
            ys.append(round(total, 2))
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"shape": "hv", "width": 2, "color": _COLORS.get(run.name)},
                name=f"{run.name} ({len(run.trades)} trades)",
            )
        )
    fig.update_layout(
        title="Equity: cumulative net P/L per closed trade",
        yaxis_title=f"net P/L ({currency})",
        height=420,
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.15},
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
    )
    return fig


def _knob_changes(
    records: Sequence[RunRecord],
) -> dict[str, list[tuple[datetime, Any, Any, str, str]]]:
    """knob -> [(at, before, after, decision, mechanism)] of every applied record."""
    out: dict[str, list[tuple[datetime, Any, Any, str, str]]] = {}
    for r in records:
        at = r.at
        if not r.applied or at is None:
            continue
        for d in r.diff:
            out.setdefault(d.knob, []).append((at, d.before, d.after, r.decision, r.mechanism))
    return out


def _num(v: Any) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    return float(v)


def _knobs(run: RunData, span: tuple[datetime, datetime]) -> Any | None:
    import plotly.graph_objects as go  # type: ignore[import-untyped,unused-ignore]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped,unused-ignore]

    changes = _knob_changes(run.records)
    if not changes:
        return None
    names = sorted(changes)[:16]
    fig = make_subplots(
        rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.04
    )
    for row, knob in enumerate(names, start=1):
        steps = changes[knob]
        xs = [span[0]] + [s[0] for s in steps] + [span[1]]
        ys = [_num(steps[0][1])] + [_num(s[2]) for s in steps] + [_num(steps[-1][2])]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"shape": "hv", "color": "#1f77b4"},
                showlegend=False,
                name=knob,
            ),
            row=row,
            col=1,
        )
        for kind, (symbol, color) in _MARKERS.items():
            pts = [s for s in steps if (s[3] if kind != "operator" else s[4]) == kind]
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts],
                    y=[_num(p[2]) for p in pts],
                    mode="markers",
                    marker={"symbol": symbol, "size": 11, "color": color},
                    name=kind,
                    legendgroup=kind,
                    showlegend=row == 1 or kind not in {s[3] for s in changes[names[0]]},
                    text=[f"{p[4]}: {p[1]} -> {p[2]}" for p in pts],
                    hoverinfo="text+x",
                ),
                row=row,
                col=1,
            )
    fig.update_layout(
        title=f"Knob trajectories ({run.name}): every applied change, with its decision",
        height=max(300, 170 * len(names) + 80),
        margin={"l": 70, "r": 20, "t": 70, "b": 40},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    return fig


def _blocks(run: RunData, span: tuple[datetime, datetime]) -> Any:
    import plotly.graph_objects as go  # type: ignore[import-untyped,unused-ignore]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped,unused-ignore]

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.55, 0.45],
        vertical_spacing=0.08,
        subplot_titles=(
            "policy status per pocket / strategy (blocked, probation; active elsewhere)",
            "entries denied by the gates, per hour and pocket",
        ),
    )
    intervals: dict[str, list[tuple[datetime, datetime, str, str]]] = {}
    for b in block_intervals(run.records, span[1]):
        intervals.setdefault(b.scope, []).append((b.start, b.stop, b.status, b.code))
    shown: set[str] = set()
    for scope in sorted(intervals):
        for start, stop, status, code in intervals[scope]:
            fig.add_trace(
                go.Scatter(
                    x=[start, stop],
                    y=[scope, scope],
                    mode="lines",
                    line={"width": 14, "color": _STATUS_COLORS.get(status, "#999")},
                    name=status,
                    legendgroup=status,
                    showlegend=status not in shown,
                    hovertext=f"{scope}: {status} ({code}) {start:%d %H:%M} - {stop:%d %H:%M}",
                    hoverinfo="text",
                ),
                row=1,
                col=1,
            )
            shown.add(status)
    if not intervals:
        fig.add_trace(
            go.Scatter(
                x=list(span),
                y=["(no block)", "(no block)"],
                mode="lines",
                showlegend=False,
                line={"color": "#ddd"},
            ),
            row=1,
            col=1,
        )
    per: dict[str, dict[str, int]] = {}
    for hour, pocket, _code, count in run.summary.get("gate_denials_by_hour", []):
        per.setdefault(str(pocket), {})
        per[str(pocket)][str(hour)] = per[str(pocket)].get(str(hour), 0) + int(count)
    for pocket in sorted(per):
        hours = sorted(per[pocket])
        fig.add_trace(
            go.Bar(x=[parse_utc(h) for h in hours], y=[per[pocket][h] for h in hours], name=pocket),
            row=2,
            col=1,
        )
    fig.update_layout(
        title=f"Blocks ({run.name})",
        barmode="stack",
        height=560,
        margin={"l": 150, "r": 20, "t": 80, "b": 40},
        legend={"orientation": "h", "y": -0.12},
    )
    fig.update_xaxes(range=list(span))
    fig.update_yaxes(title_text="scope", row=1, col=1)
    fig.update_yaxes(title_text="denied entries per hour", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    return fig


# -- tables -----------------------------------------------------------------------------------
_table = render_table
_REASONS_LIMIT = 300  # characters shown per record; the cut is marked with an ellipsis


_VERDICT_COLUMNS = ("outcome", "reason", "n_candidate", "n_baseline")


def _verdict_field(verdict: VerdictRecord, key: str) -> Any:
    return getattr(verdict, key) if verdict.has(key) else ""


def _verdict_rows(records: Sequence[RunRecord]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for r in records:
        # the policy's verdicts are its scopes; an older flat verdict names no family
        if r.mechanism == "policy" or isinstance(r.verdicts, VerdictRecord):
            continue
        for family, v in r.verdicts.items():
            rows.append(
                [
                    _at_text(r),
                    r.mechanism,
                    family,
                    r.decision,
                    *(_verdict_field(v, k) for k in _VERDICT_COLUMNS),
                ]
            )
    return _fold(rows, key=lambda row: tuple(row[1:6]), first=0)


def _fold(rows: list[list[Any]], *, key: Any, first: int) -> list[list[Any]]:
    """Fold consecutive rows with the same key: keep the first, add ``last at`` and a count."""
    out: list[list[Any]] = []
    last_key: Any = None
    for row in rows:
        k = key(row)
        if out and k == last_key:
            out[-1][-2] = row[first]
            out[-1][-1] += 1
            continue
        out.append([*row, row[first], 1])
        last_key = k
    return out


def _record_rows(records: Sequence[RunRecord]) -> tuple[list[list[Any]], list[str]]:
    """The folded rows of the records table and each row's ``<tr>`` attributes (filters).

    A row is a change when its record applied something; other rows start hidden (the
    "changes only" filter is on by default) and the page's filters show them.
    """
    rows = []
    for r in records:
        diff = ", ".join(f"{d.knob}: {d.before} -> {d.after}" for d in r.diff)
        reasons = ", ".join(r.reasons)
        rows.append(
            [_at_text(r), r.mechanism, r.decision, reasons, diff, r.version_after or "", r.applied]
        )
    folded = _fold(rows, key=lambda row: (row[1], row[2], row[3], row[4], row[6]), first=0)
    out: list[list[Any]] = []
    attrs: list[str] = []
    for row in folded:
        applied = row.pop(6)
        row[3] = clip(row[3], _REASONS_LIMIT)
        out.append(row)
        mechanism, decision = html.escape(str(row[1])), html.escape(str(row[2]))
        attrs.append(
            f'data-mechanism="{mechanism}" data-decision="{decision}"'
            f' data-change="{1 if applied else 0}"' + ("" if applied else " hidden")
        )
    return out, attrs


def _select(name: str, label: str, values: Sequence[str]) -> str:
    options = "".join(
        f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in sorted(set(values))
    )
    return (
        f'<label>{html.escape(label)} <select id="f-{name}"><option value="">all</option>'
        f"{options}</select></label>"
    )


# Filters of the records table: plain DOM, no library; "changes only" is checked by default,
# matching the rows rendered hidden.
_FILTER_JS = """<script>
(function(){
  var m=document.getElementById('f-mechanism'), d=document.getElementById('f-decision'),
      c=document.getElementById('f-changes'), n=document.getElementById('f-shown');
  var rows=document.querySelectorAll('#records tbody tr');
  function apply(){
    var shown=0;
    rows.forEach(function(r){
      var ok=(!m.value||r.dataset.mechanism===m.value)&&(!d.value||r.dataset.decision===d.value)
        &&(!c.checked||r.dataset.change==='1');
      r.hidden=!ok; if(ok){shown++;}
    });
    n.textContent=shown+' of '+rows.length+' rows shown';
  }
  [m,d,c].forEach(function(e){e.addEventListener('change',apply);});
  apply();
})();
</script>"""


def _records_section(records: Sequence[RunRecord]) -> str:
    rows, attrs = _record_rows(records)
    changes = sum(1 for a in attrs if 'data-change="1"' in a)
    controls = (
        '<div class="filters">'
        + _select("mechanism", "mechanism", [str(r[1]) for r in rows])
        + " "
        + _select("decision", "decision", [str(r[2]) for r in rows])
        + ' <label><input type="checkbox" id="f-changes" checked> changes only</label>'
        + f' <span id="f-shown">{changes} of {len(rows)} rows shown</span></div>'
    )
    table = render_table(
        [
            "first at",
            "mechanism",
            "decision",
            "reasons",
            "diff",
            "version after",
            "last at",
            "runs",
        ],
        rows,
        "records",
        row_attrs=attrs,
    ).replace('<table class="records">', '<table class="records" id="records">', 1)
    return f'{controls}<div class="scroll">{table}</div>\n{_FILTER_JS}'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1320px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}
h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
table.compare td:nth-child(n+2){text-align:right;font-variant-numeric:tabular-nums}
table.from4 td:nth-child(-n+3),table.from6 td:nth-child(-n+5){text-align:left}
.scroll{max-height:520px;overflow:auto;border:1px solid #eee}
.filters{margin:6px 0}.filters label{margin-right:12px}h3{margin-top:20px}
"""


def build_report(root: Path, output: Path | None = None) -> Path:
    """Write the HTML report of the run(s) under ``root``; return its path."""
    import plotly.io as pio  # type: ignore[import-untyped,unused-ignore]

    runs = [load_run(p) for p in find_runs(root)]
    main = runs[0]
    first = min(parse_utc(r.summary["first_bar"]) for r in runs)
    last = max(parse_utc(r.summary["last_bar"]) for r in runs)
    span = (first, last)
    currency = str(main.summary.get("config", {}).get("account_currency", "USD"))
    figures: list[tuple[str, str, Any]] = [("equity", "Equity", _equity(runs, currency))]
    knobs = _knobs(main, span)
    figures.append(("knobs", "Knob trajectories", knobs))
    figures.append(("blocks", "Pocket blocks", _blocks(main, span)))
    parts: list[str] = []
    plotly_included = False
    for div_id, title, fig in figures:
        parts.append(f"<h2 id='h-{div_id}'>{html.escape(title)}</h2>")
        if fig is None:
            parts.append("<p>No knob changed in this run (every mechanism froze or held).</p>")
            continue
        parts.append(
            pio.to_html(
                fig,
                full_html=False,
                include_plotlyjs=not plotly_included,
                div_id=div_id,
                config={"displaylogo": False, "responsive": True},
            )
        )
        plotly_included = True
    by_name = {r.name: r.summary for r in runs}
    by_run = {r.name: r for r in runs}
    why = "<p>One run only: nothing to explain against (replay with --compare).</p>"
    if "learning" in by_name and "static" in by_name:
        compare = _table(
            ["", "learning", "static"],
            comparison_rows(by_name["learning"], by_name["static"]),
            "compare",
        )
        learning = by_run["learning"]
        why = why_section(
            learning.trades,
            by_run["static"].trades,
            learning.records,
            learning.signals,
            last,
            currency,
        )
    else:
        compare = _table(
            ["", main.name],
            [(a, b) for a, b, _ in comparison_rows(main.summary, main.summary)],
            "compare",
        )
    verdicts = _verdict_rows(main.records)
    skipped = (
        "<p>Unreadable history lines, skipped: "
        + html.escape("; ".join(main.history_problems))
        + "</p>\n"
        if main.history_problems
        else ""
    )
    s = main.summary
    mechanisms = ", ".join(s.get("config", {}).get("mechanisms", [])) or "none"
    meta = (
        f"{html.escape(str(s.get('instrument')))}, {s.get('bars'):,} bars from "
        f"{html.escape(str(s.get('first_bar')))} to {html.escape(str(s.get('last_bar')))}; "
        f"mechanisms: {html.escape(mechanisms)}; "
        f"spread {s.get('config', {}).get('spread_pips')} pips, "
        f"{s.get('config', {}).get('units')} units per entry"
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>autolearn replay report</title>
<style>{_CSS}</style></head><body>
<h1>autolearn replay report</h1>
<p class="meta">{meta}</p>
<h2>Learning vs static</h2>
{compare}
{why}
{"".join(parts)}
<h2 id="h-verdicts">Verdicts (tuner, scalp trainer)</h2>
{
        _table(
            [
                "first at",
                "mechanism",
                "family",
                "decision",
                "outcome",
                "reason",
                "candidate n",
                "baseline n",
                "last at",
                "runs",
            ],
            verdicts,
        )
        if verdicts
        else "<p>No change was judged in this run.</p>"
    }
<h2 id="h-records">Run records ({len(main.records):,}, consecutive identical ones folded)</h2>
{skipped}{_records_section(main.records)}
</body></html>
"""
    target = output or root / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(doc, encoding="utf-8")
    return target
