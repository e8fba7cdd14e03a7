"""The report's "why" section: P/L by pocket and strategy, the difference by cause, the blocks.

Pure: run data in, an HTML fragment out (escaped; no plotly, no I/O). The numbers come from
:mod:`autolearn.report.attribution`; this module only lays them out and says what they mean.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from autolearn.core.model import ShadowSignal, Trade
from autolearn.core.run_record import RunRecord
from autolearn.report.attribution import (
    CauseEffect,
    attribute,
    block_effects,
    pnl_by,
)

__all__ = ["clip", "render_table", "why_section"]

_ELLIPSIS = "\u2026"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked with an ellipsis."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    cls: str = "",
    row_attrs: Sequence[str] | None = None,
) -> str:
    """An HTML table, every cell escaped; ``row_attrs`` are trusted ``<tr>`` attributes."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{(' ' + row_attrs[i]) if row_attrs else ''}>"
        + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _money(value: float) -> str:
    return f"{value:+,.2f}" if value else "0.00"


def _pnl_table(field: str, learning: Sequence[Trade], static: Sequence[Trade], cur: str) -> str:
    rows = [
        [
            r.key,
            r.learning_trades,
            _money(r.learning_net),
            r.static_trades,
            _money(r.static_net),
            _money(r.difference),
        ]
        for r in pnl_by(field, learning, static)
    ]
    headers = [
        field,
        "learning trades",
        f"learning net ({cur})",
        "static trades",
        f"static net ({cur})",
        f"difference ({cur})",
    ]
    return render_table(headers, rows, "compare")


def _by_mechanism(effects: Sequence[CauseEffect]) -> list[list[Any]]:
    sums: dict[str, list[float]] = {}
    for e in effects:
        row = sums.setdefault(e.cause.mechanism, [0, 0.0, 0, 0.0, 0, 0.0, 0.0])
        for i, value in enumerate(
            (
                e.admitted_trades,
                e.admitted_net,
                e.denied_trades,
                e.denied_net,
                e.changed_trades,
                e.changed_net,
                e.effect,
            )
        ):
            row[i] += value
    rows = []
    for mechanism, v in sorted(sums.items(), key=lambda kv: -abs(kv[1][6])):
        rows.append(
            [
                mechanism,
                int(v[0]),
                _money(v[1]),
                int(v[2]),
                _money(v[3]),
                int(v[4]),
                _money(v[5]),
                _money(v[6]),
            ]
        )
    return rows


_EFFECT_HEADERS = (
    "admitted entries",
    "their P/L",
    "denied entries",
    "their static P/L",
    "same entry, other exit",
    "P/L change",
    "effect on learning",
)


def why_section(
    learning: Sequence[Trade],
    static: Sequence[Trade],
    records: Sequence[RunRecord],
    signals: Sequence[ShadowSignal],
    end: datetime,
    currency: str,
) -> str:
    """The HTML of "Why learning won/lost": everything escaped, deterministic."""
    effects = attribute(learning, static, records, end)
    difference = sum(t.pl_account for t in learning) - sum(t.pl_account for t in static)
    verb = "won" if difference > 0 else "lost" if difference < 0 else "tied"
    parts = [
        f"<h2 id='h-why'>Why learning {verb} ({_money(difference)} {html.escape(currency)})</h2>",
        "<p>The two runs replay the same candles with the same strategies; an entry is the same "
        "in both when pocket, strategy, side and entry time match. Each entry taken by one run "
        "only, or closed at another P/L, is charged to the decision that explains it: a policy "
        "block open at its entry, else the newest change naming its pocket or strategy, else "
        "the newest change before it (indirect: e.g. a position freed). The effects add up to "
        "the difference.</p>",
        "<h3>P/L by pocket</h3>",
        _pnl_table("pocket", learning, static, currency),
        "<h3>P/L by strategy</h3>",
        _pnl_table("strategy", learning, static, currency),
        f"<h3>The difference by mechanism ({html.escape(currency)})</h3>",
        render_table(["mechanism", *_EFFECT_HEADERS], _by_mechanism(effects), "compare"),
        "<h3>The difference by decision</h3>",
    ]
    if effects:
        rows = [
            [
                e.cause.mechanism,
                e.cause.label,
                "direct" if e.cause.direct else "indirect",
                e.admitted_trades,
                _money(e.admitted_net),
                e.denied_trades,
                _money(e.denied_net),
                e.changed_trades,
                _money(e.changed_net),
                _money(e.effect),
            ]
            for e in effects
        ]
        headers = ["mechanism", "decision", "link", *_EFFECT_HEADERS]
        parts.append(render_table(headers, rows, "compare from4"))
    else:
        parts.append("<p>Both runs took the same entries with the same P/L.</p>")
    parts.append("<h3>Blocks: the evidence that kept each, and what each cost or saved</h3>")
    blocks = block_effects(records, signals, static, end)
    if blocks:
        rows = [
            [
                b.block.scope,
                f"{b.block.start:%Y-%m-%d %H:%M}",
                f"{b.block.stop:%Y-%m-%d %H:%M}",
                b.block.code,
                clip(b.evidence or "-", 240),
                b.shadow_signals,
                f"{b.shadow_pips:+.1f}",
                b.static_trades,
                _money(b.static_net),
                ("saved " if b.saved_account >= 0 else "cost ") + f"{abs(b.saved_account):,.2f}",
            ]
            for b in blocks
        ]
        headers = [
            "scope",
            "from",
            "to",
            "why blocked",
            "last evidence while blocked",
            "denied signals",
            "their outcome (pips)",
            "static entries",
            f"static P/L ({currency})",
            f"block ({currency})",
        ]
        parts.append(render_table(headers, rows, "compare from6"))
    else:
        parts.append("<p>No pocket or strategy was blocked in this run.</p>")
    return "\n".join(parts)
