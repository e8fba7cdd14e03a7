"""The HTML report: complete, deterministic, offline, and rendered by a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolearn.backtest import load_candles
from autolearn.core.timestamps import parse_utc
from autolearn.errors import InputError
from autolearn.replay import ReplayConfig, run_replay, slice_candles
from autolearn.report import build_report, find_runs, load_run
from autolearn.report.attribution import attribute
from autolearn.settings import load_registry

REPO = Path(__file__).resolve().parents[2]
MONTH = REPO / "examples/data/fx/DAT_ASCII_EURUSD_M1_201807.csv"
PLOTS = ("equity", "knobs", "blocks")


@pytest.fixture(name="runs", scope="module")
def fixture_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learning and a static replay of two real days (July 2018, EUR/USD M1)."""
    root = tmp_path_factory.mktemp("report")
    start = datetime(2018, 7, 1, 21, tzinfo=UTC)
    candles = slice_candles(load_candles(MONTH), start, start + timedelta(days=2))
    registry = load_registry(None)
    run_replay(candles, root / "learning", ReplayConfig(), registry)
    run_replay(candles, root / "static", ReplayConfig(mechanisms=()), registry)
    return root


@pytest.fixture(name="page", scope="module")
def fixture_page(runs: Path) -> Path:
    """The report of those runs."""
    return build_report(runs)


def test_page_has_every_section_and_inlines_plotly_once(page: Path) -> None:
    """Three plots with fixed ids, the comparison, verdicts and records; plotly.js inlined once."""
    text = page.read_text(encoding="utf-8")
    for div in PLOTS:
        assert f'id="{div}"' in text
    for heading in ("Learning vs static", "Verdicts", "Run records"):
        assert heading in text
    assert "net P/L (USD)" in text and "policy blocks" in text
    assert text.count("Plotly.newPlot(") == len(PLOTS)
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the library, once
    assert "<script src=" not in text  # nothing fetched from the network


def test_page_explains_why_learning_won(runs: Path, page: Path) -> None:
    """P/L by pocket and strategy for both runs, the difference by mechanism and decision adding
    up to the net difference, and each block with its evidence and what it saved or cost."""
    text = page.read_text(encoding="utf-8")
    learning, static = (load_run(runs / name) for name in ("learning", "static"))
    difference = sum(t.pl_account for t in learning.trades) - sum(
        t.pl_account for t in static.trades
    )
    verb = "won" if difference > 0 else "lost"
    assert f"Why learning {verb} ({difference:+,.2f} USD)" in text
    for heading in (
        "P/L by pocket",
        "P/L by strategy",
        "The difference by mechanism",
        "The difference by decision",
        "Blocks: the evidence",
    ):
        assert heading in text
    why = text[text.index("id='h-why'") : text.index("id='h-equity'")]
    for pocket in {t.pocket for t in static.trades}:
        assert f"<td>{pocket}</td>" in why
    blocked = [r for r in learning.records if r.mechanism == "policy" and r.applied]
    assert blocked, "the fixture's learning run blocks a pocket"
    assert "block_negative_expectancy" in why and ("saved " in why or "cost " in why)
    effects = attribute(
        learning.trades, static.trades, learning.records, parse_utc(learning.summary["last_bar"])
    )
    assert sum(e.effect for e in effects) == pytest.approx(difference)


def test_records_table_filters_changes_only_by_default(runs: Path, page: Path) -> None:
    """Every records row carries its mechanism, decision and change flag; rows that changed
    nothing start hidden; the page has the mechanism / decision / changes-only controls."""
    text = page.read_text(encoding="utf-8")
    section = text[text.index('id="h-records"') :]
    rows = re.findall(r"<tr (data-mechanism=[^>]*)>", section)
    assert rows
    hidden = [r for r in rows if r.endswith(" hidden")]
    assert hidden and all('data-change="0"' in r for r in hidden)
    assert all('data-change="1"' in r for r in rows if not r.endswith(" hidden"))
    assert any('data-change="1"' in r for r in rows)
    for control in ('id="f-mechanism"', 'id="f-decision"', 'id="f-changes" checked'):
        assert control in section
    assert '<option value="policy">policy</option>' in section


def test_long_reasons_are_cut_with_an_ellipsis(tmp_path: Path, runs: Path) -> None:
    """A record whose reasons exceed 300 characters shows 299 of them and an ellipsis."""
    run = tmp_path / "one"
    shutil.copytree(runs / "learning", run)
    long_reason = "x" * 500
    with (run / "state" / "history.jsonl").open("a", encoding="utf-8") as f:
        f.write(
            '{"at": "2018-07-03T20:00:00.000000Z", "mechanism": "operator", "decision": '
            f'"set", "applied": false, "reasons": ["{long_reason}"], "diff": []}}\n'
        )
    text = build_report(run).read_text(encoding="utf-8")
    assert "x" * 299 + "\u2026" in text
    assert "x" * 300 not in text


def test_denials_chart_has_axis_labels(page: Path) -> None:
    """The blocks figure names its axes: scope, denied entries per hour, time (UTC)."""
    text = page.read_text(encoding="utf-8")
    for label in ("denied entries per hour", "time (UTC)", '"text":"scope"'):
        assert label in text


def test_page_is_deterministic(runs: Path, page: Path, tmp_path: Path) -> None:
    """Building the report again gives the same bytes."""
    again = build_report(runs, tmp_path / "again.html")
    assert again.read_bytes() == page.read_bytes()


def test_single_run_dir_and_missing_run(runs: Path, tmp_path: Path) -> None:
    """A run dir alone is a report of its own; a dir without runs is a clear input error."""
    assert find_runs(runs / "static") == [runs / "static"]
    assert find_runs(runs) == [runs / "learning", runs / "static"]
    with pytest.raises(InputError, match="no replay run here"):
        find_runs(tmp_path)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no headless chromium binary: install the Debian package `chromium` "
        "(apt-get install -y chromium) to run the report's browser tests"
    )


def _browser(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.chromium
def test_browser_renders_every_plot_without_errors(page: Path, tmp_path: Path) -> None:
    """Headless Chromium loads the page offline, plotly draws each plot, no JS error is logged."""
    done = _browser(page, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    for div in PLOTS:
        start = dom.index(f'id="{div}"')
        assert "main-svg" in dom[start : start + 20_000], f"plot {div} did not render"
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "rror" in line], console


@pytest.mark.chromium
def test_browser_filters_show_changes_only_then_all(page: Path, tmp_path: Path) -> None:
    """In the browser the records filter runs: by default it counts the change rows only."""
    done = _browser(page, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    shown = re.search(r'id="f-shown">(\d+) of (\d+) rows shown<', done.stdout)
    assert shown, "the filter script did not run"
    changes, total = int(shown.group(1)), int(shown.group(2))
    text = page.read_text(encoding="utf-8")
    assert changes == text.count('data-change="1"')
    assert 0 < changes < total


@pytest.mark.chromium
def test_screenshot(page: Path, tmp_path: Path) -> None:
    """A full-page screenshot is a real picture (kept as the README's report image's source)."""
    shot = tmp_path / "report.png"
    done = _browser(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,2600")
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank 1400x2600 page compresses to a few kB
