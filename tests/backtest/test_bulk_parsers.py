"""The vectorised candle parsers equal the row-by-row ones, bit for bit, on real and broken files.

``_parsers.parse_histdata`` / ``parse_delimited`` (one row at a time) are the reference; the
loader reads through ``_bulk``. Equal means the same rows, times, prices, spreads (compared as
bit patterns, NaN included) and the same rejected rows with the same messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolearn.backtest import _bulk
from autolearn.backtest._bulk import RowArrays, row_arrays
from autolearn.backtest._parsers import parse_delimited, parse_histdata
from autolearn.backtest.candles import CandleFormat, detect_format

ROOT = Path(__file__).resolve().parent.parent.parent
FX = ROOT / "tests" / "data" / "fx"
SHARED = ROOT.parent / "shared" / "data" / "fx"  # the full files, where the checkout has them
TEXT_FORMATS: dict[CandleFormat, dict[str, Any]] = {
    CandleFormat.HISTDATA: {},
    CandleFormat.MT5_QUOTED: {"sep": "\t", "time_kind": "ymd", "quoted": True},
    CandleFormat.MT5_EPOCH: {"sep": ",", "time_kind": "epoch_s", "spread_points": True},
    CandleFormat.MT5_CSV: {"sep": ",", "time_kind": "ymd"},
    CandleFormat.BACKTESTING_PY: {"sep": ",", "time_kind": "ymd"},
}
BUNDLED = sorted(
    p
    for base in (FX, ROOT / "examples" / "data" / "fx", SHARED)
    for p in base.rglob("*.csv")
    if p.is_file()
)


def _both(text: str, kind: CandleFormat) -> tuple[RowArrays, RowArrays]:
    args = TEXT_FORMATS[kind]
    if kind is CandleFormat.HISTDATA:
        return row_arrays(parse_histdata(text)), _bulk.bulk_histdata(text)
    return row_arrays(parse_delimited(text, **args)), _bulk.bulk_delimited(text, **args)


def _assert_same(reference: RowArrays, bulk: RowArrays) -> None:
    assert bulk.rejected == reference.rejected
    for name in ("rows", "time_us", "prices", "spreads"):
        a, b = getattr(reference, name), getattr(bulk, name)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        assert np.array_equal(a.view(np.int64), b.view(np.int64)), name  # bits, NaN too
    assert (bulk.incomplete_dropped, bulk.instrument, bulk.timeframe_s) == (0, "", 0)


def _whole_file_taken(text: str, kind: CandleFormat) -> bool:
    args = dict(TEXT_FORMATS[kind])
    if kind is CandleFormat.HISTDATA:
        return _bulk._whole_file(text, sep=";", time_kind="compact", header=False) is not None
    lines = text.splitlines()
    with_spread = bool(args.pop("spread_points", False)) and "spread" in lines[0].lower()
    return _bulk._whole_file(text, header=True, with_spread=with_spread, **args) is not None


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_bulk_equals_row_parser_on_every_bundled_file(path: Path) -> None:
    """Every bundled CSV parses to the same bits both ways, through the whole-file fast path."""
    text = path.read_text(encoding="utf-8-sig")
    kind = detect_format(text[:4096])
    reference, bulk = _both(text, kind)
    assert len(reference.rows) > 0
    _assert_same(reference, bulk)
    assert _whole_file_taken(text, kind)  # the clean real files never need the row parser


# Lines a real file could hold by accident, each something the row parser rejects, accepts
# by a path the strict expressions do not take, or skips.
HISTDATA_ODD = [
    "",
    "   ",
    "20180230 170000;1.1;1.2;1.0;1.1;0",  # 30 February
    "20180701 240000;1.1;1.2;1.0;1.1;0",
    "20180701 170060;1.1;1.2;1.0;1.1;0",
    "00000101 000000;1.1;1.2;1.0;1.1;0",  # year 0
    "20180701 170000;1.1;1.0;1.2;1.1;0",  # high below low
    "20180701 170000;1.3;1.2;1.0;1.1;0",  # open above high
    "20180701 170000;0;1.2;1.0;1.1;0",
    "20180701 170000;-1.1;1.2;1.0;1.1;0",
    "20180701 170000;nan;1.2;1.0;1.1;0",
    "20180701 170000;inf;1.2;1.0;1.1;0",
    "20180701 170000;1.1;1.2;1.0;1.1;-1",
    "20180701 170000;1e-0;1.2;1.0;1.1;0",  # accepted by float: the row parser's path
    "20180701 170000;1_1;12;1.0;1.1;0",  # float reads underscores
    " 20180701 170000;1.1;1.2;1.0;1.1;0 ",
    "20180701 170000;1.1;1.2;1.0;1.1",
    "20180701 170000;1.1;1.2;1.0;1.1;0;9",
    "20180701T170000;1.1;1.2;1.0;1.1;0",
    "2018070١ 170000;1.1;1.2;1.0;1.1;0",  # an Arabic-Indic digit: str.isdigit, not int
    "20180701 170000;1.1;1.2;1.0;1.1;0\r20180701 170100;1.1;1.2;1.0;1.1;0",
    "20180701 170000;1.1;1.2;1.0;1.1;0\x0c",
    "20180701 170000;;1.2;1.0;1.1;0",
    "20180701 170000;1.1;1.2;1.0;1.1;0x1",
    "20180701 170000;1.;1.2;.5;1.1;0",
    "20180701 170000;1.1\x00;1.2;1.0;1.1;0",  # NUL: float refuses it, so must the bulk path
    "20180701 170000;1.1\x01;1.2;1.0;1.1;0",
    "20180701 170000;+1.1;1.2;1.0;1.1;0",
    "20180701 170000;1.1\t;1.2; 1.0;1.1;0",  # whitespace float strips
]
EPOCH_ODD = [
    "",
    "1530464400,1.1,1.2,1.0,1.1,5",  # no spread column
    "1530464400,1.1,1.2,1.0,1.1,5,",
    "1530464400,1.1,1.2,1.0,1.1,5,-3",
    "1530464400,1.1,1.2,1.0,1.1,5,nan",
    "1530464400,1.1,1.2,1.0,1.1,5,1e1",
    "1530464400.5,1.1,1.2,1.0,1.1,5,3",
    "1530464400,1.12345678,1.2,1.0,1.1,5,3,extra",
    "1530464400,1.1,1.2,1.3,1.1,5,3",
    "-1530464400,1.1,1.2,1.0,1.1,5,3",
    "1530464400,1.100,1.200,1.000,1.100,5,30",
    "1530464400,1,1.2,1,1.1,5,3",
    "abc,1.1,1.2,1.0,1.1,5,3",
]
YMD_ODD = [
    "",
    "2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.1\t24",
    '"2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.1\t24',
    '"2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.1\t24\textra"',
    '"2022-01-04T18:00:00\t1.1\t1.2\t1.0\t1.1\t24"',
    '"2022-01-04x18:00:00\t1.1\t1.2\t1.0\t1.1\t24"',
    '"2022-01x04 18:00:00\t1.1\t1.2\t1.0\t1.1\t24"',  # the row parser never checks there
    '"2022-13-04 18:00:00\t1.1\t1.2\t1.0\t1.1\t24"',
    '"2022-02-29 18:00:00\t1.1\t1.2\t1.0\t1.1\t24"',
    '"2024-02-29 18:00:00\t1.1\t1.2\t1.0\t1.1\t24"',  # leap day
    '"2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.1"',
    '"2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.0\t24"',
    '  "2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.1\t24"  ',
    '"2022-01-04 18:00:00\t1.1\t1.2\t1.0\t1.1\t2"4"',
]


def _with_odd_lines(path: Path, odd: list[str], data: st.DataObject, head: int) -> str:
    lines = path.read_text(encoding="utf-8-sig").splitlines()[:head]
    first = 1 if lines[0][:1].isalpha() or lines[0].startswith(('"T', ",")) else 0
    picks = data.draw(st.lists(st.tuples(st.integers(first, len(lines)), st.sampled_from(odd))))
    for at, line in sorted(picks, reverse=True):
        lines.insert(at, line)
    ending = data.draw(st.sampled_from(["\n", "\r\n"]))
    return ending.join(lines) + data.draw(st.sampled_from(["", ending]))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_bulk_equals_row_parser_with_odd_lines_mixed_in(data: st.DataObject) -> None:
    """Odd lines anywhere in a real file: same rows, values and rejections (messages, order)."""
    cases = [
        (
            FX / "histdata-paskl-fxot" / "DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv",
            HISTDATA_ODD,
        ),
        (FX / "mt5-tb-logs" / "EURUSD_H1.part-xcheck.csv", EPOCH_ODD),
        (FX / "mt5-hadiforoughi" / "EURUSD_M1.part-0001-1200.csv", YMD_ODD),
        (
            FX / "mt5-hadiforoughi" / "EURUSD_M1.converted.part-0001-1200.csv",
            [line.strip('" ').replace("\t", ",") for line in YMD_ODD],
        ),
    ]
    path, odd = data.draw(st.sampled_from(cases))
    text = _with_odd_lines(path, odd, data, head=40)
    reference, bulk = _both(text, detect_format(text[:4096]))
    _assert_same(reference, bulk)


@pytest.mark.parametrize("extra", ["", "1530475200,1.1,1.2,1.0,1.1,5,x\n"])
def test_spread_precision_ties_go_to_the_first_seen_as_in_counter(extra: str) -> None:
    """Four 2-decimal and four 3-decimal prices: Counter.most_common keeps the first, 2.

    Also with a rejected row, which still counts for the precision (and sends the file down
    the per-line path).
    """
    text = (
        "time,open,high,low,close,tick_volume,spread\n"
        "1530464400,1.11,1.12,1.10,1.11,5,18\n"
        "1530468000,1.111,1.121,1.101,1.111,5,18\n" + extra
    )
    reference, bulk = _both(text, CandleFormat.MT5_EPOCH)
    _assert_same(reference, bulk)
    assert bulk.spreads[0] == 18 * 10.0**-2
    assert _whole_file_taken(text, CandleFormat.MT5_EPOCH) is (extra == "")
