"""Selection-bias accounting: the deflated Sharpe ratio of the best of many trials.

The best of N backtests looks good partly by luck. Bailey & López de Prado, "The Deflated
Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of
Portfolio Management 40(5), 2014, pp. 94-107 (SSRN 2460551):

* expected maximum Sharpe of N unskilled trials whose Sharpes have variance ``V``::

      SR0 = sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))

  with ``g`` the Euler-Mascheroni constant (their eq. for E[max SR_n]);
* the probabilistic Sharpe ratio (Bailey & López de Prado 2012) of the observed ``SR`` against
  ``SR0`` over ``T`` returns with skewness ``g3`` and (non-excess) kurtosis ``g4``::

      DSR = Phi( (SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2) )

DSR is the probability that the winner's true Sharpe exceeds what N lucky tries would show.
Sharpes here are per trade (mean / sd of trade P/L), not annualised: all that matters is that
``SR``, ``V`` and ``T`` use the same unit. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _stats

__all__ = [
    "DeflatedSharpe",
    "deflate",
    "expected_max_sharpe",
    "probabilistic_sharpe",
    "sharpe_ratio",
]

_EULER_GAMMA = 0.5772156649015329


def sharpe_ratio(pips: Sequence[float]) -> float:
    """Per-trade Sharpe ratio ``mean / sd`` (ddof 1); NaN with < 2 trades or no spread."""
    x = np.asarray(pips, dtype=np.float64)
    if len(x) < 2:
        return math.nan
    sd = float(np.std(x, ddof=1))
    return float(np.mean(x)) / sd if sd > 0 else math.nan


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """``SR0``: the expected best Sharpe of ``n_trials`` skill-less trials (0 for one trial)."""
    if n_trials <= 1 or not math.isfinite(var_sharpe) or var_sharpe <= 0:
        return 0.0
    g = _EULER_GAMMA
    z1 = float(_stats.norm.ppf(1 - 1 / n_trials))
    z2 = float(_stats.norm.ppf(1 - 1 / (n_trials * math.e)))
    return math.sqrt(var_sharpe) * ((1 - g) * z1 + g * z2)


def probabilistic_sharpe(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P(true Sharpe > ``benchmark``) given the observed one (NaN when undefined)."""
    if n_obs < 2 or not math.isfinite(sharpe):
        return math.nan
    denom = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if not denom > 0:
        return math.nan
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)
    return float(_stats.norm.cdf(z))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeflatedSharpe:
    """The winner's Sharpe, the selection hurdle ``sr0`` and the deflated Sharpe ``dsr``."""

    sharpe: float
    sr0: float
    n_trials: int
    var_trials: float
    n_obs: int
    skew: float
    kurtosis: float
    dsr: float

    def to_record(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {
            "sharpe": num(self.sharpe),
            "sr0": num(self.sr0),
            "n_trials": self.n_trials,
            "var_trial_sharpes": num(self.var_trials),
            "n_obs": self.n_obs,
            "skew": num(self.skew),
            "kurtosis": num(self.kurtosis),
            "dsr": num(self.dsr),
            "method": "deflated Sharpe ratio, Bailey & Lopez de Prado 2014",
        }


def deflate(
    winner_pips: Sequence[float], trial_sharpes: Sequence[float], n_trials: int
) -> DeflatedSharpe:
    """Deflate the winner's Sharpe by ``n_trials`` tries whose Sharpes were ``trial_sharpes``.

    ``n_trials`` counts every configuration tried (pruned ones too: they were looked at);
    ``trial_sharpes`` are the finite Sharpes of the scored trials (their variance is ``V``).
    """
    x = np.asarray(winner_pips, dtype=np.float64)
    sr = sharpe_ratio(list(winner_pips))
    finite = [s for s in trial_sharpes if math.isfinite(s)]
    var = float(np.var(finite, ddof=1)) if len(finite) >= 2 else math.nan
    sr0 = expected_max_sharpe(max(n_trials, len(finite)), var)
    if len(x) >= 3 and float(np.std(x)) > 0:
        skew = float(_stats.skew(x))
        kurt = float(_stats.kurtosis(x, fisher=False))
    else:
        skew, kurt = 0.0, 3.0  # normal: the formula's own default
    return DeflatedSharpe(
        sharpe=sr,
        sr0=sr0,
        n_trials=max(n_trials, len(finite)),
        var_trials=var,
        n_obs=len(x),
        skew=skew,
        kurtosis=kurt,
        dsr=probabilistic_sharpe(sr, sr0, len(x), skew, kurt),
    )
