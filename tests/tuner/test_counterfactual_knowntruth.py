"""Known truth for the counterfactual tuner: synthetic M1 candles where the best threshold is known.

Each seed drives the real ``tuner.run_cycle`` for 30 simulated days (``autolearn.knowntruth``:
every signal logged, arms honoured, real SQLite ledger and state store) and asserts the issue's
"Done when" criteria on a handful of seeds; ``bench/bench_counterfactual_tuner.py`` runs many
seeds and prints the rates with intervals. The tuner runs hourly here (the bench's default is
every 10 minutes): the counterfactual looks every 6 hours either way, and the live judge's
sequence is valid however often it looks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from autolearn.knowntruth import PRESET, CfOutcome, CfScenario, run_cf_scenario

pytestmark = pytest.mark.slow

HOURLY = 60


@pytest.fixture(name="tmp_path")
def fixture_fast_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A RAM disk when there is one: a tuner cycle's cost is mostly its fsyncs, and 720 cycles
    per seed on a loaded disk made these tests take minutes (the semantics do not change)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="autolearn-kt-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(tmp_path: Path, scenario: CfScenario, seed: int) -> CfOutcome:
    return run_cf_scenario(replace(scenario, minutes=HOURLY), seed, tmp_path / f"seed{seed}")


def _assert_only_confirmed_moves(outcome: CfOutcome) -> None:
    """Every applied move had a confirmed counterfactual gain in its pre-registered evidence."""
    assert outcome.cf_not_improving == 0, outcome


@pytest.mark.parametrize("seed", [0])
def test_the_best_value_is_reached_within_30_days(tmp_path: Path, seed: int) -> None:
    """s* = 0.62: the LKG comes within one step of 0.62 and no applied move loses P/L."""
    outcome = _run(tmp_path, CfScenario(name="loosen", s_star=0.62), seed)
    print(f"\n[loosen seed {seed}] applied {outcome.applied}, final LKG {outcome.final_lkg}")
    assert outcome.best == pytest.approx(0.62)
    assert outcome.reached, outcome
    assert outcome.worse_applied == 0
    assert outcome.reasons.get("cf_confirmed"), "the flight was promoted on its forecast"
    _assert_only_confirmed_moves(outcome)


def test_a_harmful_candidate_is_never_applied(tmp_path: Path) -> None:
    """The preset is the best value (s* = 0.65): every move would hurt, none is applied."""
    outcome = _run(tmp_path, CfScenario(name="at_best", s_star=PRESET), 2)
    assert outcome.worse_applied == 0, outcome
    _assert_only_confirmed_moves(outcome)


def test_no_true_difference_applies_nothing(tmp_path: Path) -> None:
    """No signal has an edge: 30 days of evidence, and the knob stays where it is."""
    outcome = _run(tmp_path, CfScenario(name="null", s_star=None), 3)
    assert outcome.applied == [], outcome
    assert outcome.final_lkg == pytest.approx(PRESET)
