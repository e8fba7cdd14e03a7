"""A cross pair (neither currency is the account's) is refused before the replay starts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from autolearn.backtest import load_candles
from autolearn.cli import main
from autolearn.errors import ConfigError
from autolearn.replay import ReplayConfig, run_replay
from autolearn.settings import load_registry

# 1,500 real EUR/USD M1 bars; copied under a cross pair's HistData name, the loader reads the
# instrument from the name (the prices do not matter: nothing may run).
SLICE = (
    Path(__file__).resolve().parents[1]
    / "data/fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
)


@pytest.mark.parametrize(("pair", "quote"), [("GBPJPY", "JPY"), ("EURGBP", "GBP")])
def test_cli_refuses_a_cross_pair_at_once_with_exit_78(
    pair: str, quote: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay` on GBP/JPY or EUR/GBP exits 78 naming the conversion, in seconds, writing no run."""
    path = tmp_path / f"DAT_ASCII_{pair}_M1_201807.csv"
    shutil.copy(SLICE, path)
    base = ["--bot-root", str(tmp_path), "--state-dir", str(tmp_path / "s")]
    started = time.perf_counter()
    assert main([*base, "replay", "--candles", str(path), "--quiet"]) == 78
    assert time.perf_counter() - started < 10  # the first close used to come ~30 s in
    err = capsys.readouterr().err
    assert f"cannot convert {quote} P/L of {pair[:3]}_{pair[3:]} to USD" in err
    assert not (tmp_path / "logs").exists()


def test_run_replay_refuses_before_any_work(tmp_path: Path) -> None:
    """The engine refuses a cross pair before its first bar (it used to at the first close)."""
    candles = load_candles(SLICE)
    cross = type(candles)(
        instrument="GBP_JPY",
        timeframe_s=candles.timeframe_s,
        source="test",
        time_us=candles.time_us,
        open=candles.open,
        high=candles.high,
        low=candles.low,
        close=candles.close,
        volume=candles.volume,
    )
    bars: list[int] = []
    with pytest.raises(ConfigError, match="cannot convert JPY P/L of GBP_JPY to USD"):
        run_replay(
            cross,
            tmp_path / "run",
            ReplayConfig(),
            load_registry(None),
            progress=lambda done, _total: bars.append(done),
        )
    assert bars == [] and not (tmp_path / "run").exists()
