"""What the workers and hosts of one study agree on: slots, seeds, the one decision per study
(the rules, and the SQLite single-host path; PostgreSQL with real processes: test_pg_hosts)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from autolearn.adapters.state import StateStore
from autolearn.autotune import AutotuneConfig, run_cycle
from autolearn.autotune.shared import SLOT, claim_decision, slots_taken, storage_lock
from autolearn.autotune.study import _RetryStarted
from autolearn.backtest import Candles, load_candles
from autolearn.core.timestamps import from_epoch_us
from autolearn.errors import ConfigError
from autolearn.ledger.sql import SqlLedger
from autolearn.settings import load_registry

CANDLES = (
    Path(__file__).parents[1]
    / "data/fx/histdata-paskl-fxot/DAT_ASCII_EURUSD_M1_201807.part-0001-1500.csv"
)
REGISTRY = load_registry(None)


def _trial(
    number: int, state: TrialState, *, claimed: bool = False, retry_of: int | None = None
) -> FrozenTrial:
    trial = optuna.trial.create_trial(
        state=state,
        value=1.0 if state is TrialState.COMPLETE else None,
        params={"fast": 5} if state is not TrialState.RUNNING or claimed else None,
        distributions={"fast": IntDistribution(3, 60)}
        if state is not TrialState.RUNNING or claimed
        else None,
        user_attrs={SLOT: 0} if claimed else {},
        system_attrs={"failed_trial": retry_of} if retry_of is not None else {},
    )
    trial.number = number
    return trial


class TestSlotsTaken:
    def test_finished_claimed_running_and_requeued_trials_hold_a_slot(self) -> None:
        """Complete, pruned, claimed running and re-queued retries count; the rest does not."""
        trials = [
            _trial(0, TrialState.COMPLETE),
            _trial(1, TrialState.PRUNED),
            _trial(2, TrialState.RUNNING, claimed=True),
            _trial(3, TrialState.RUNNING),  # not claimed yet (or died before its claim)
            _trial(4, TrialState.FAIL),  # a dead worker's, or a surplus one: slot freed
            _trial(5, TrialState.WAITING, retry_of=4),  # its parameters, queued again
            _trial(6, TrialState.WAITING),  # an enqueued trial that is no retry
        ]
        assert slots_taken(trials, own_number=99) == 4

    def test_a_trial_never_counts_itself(self) -> None:
        """The popped retry claiming its slot does not see itself as a holder."""
        trials = [_trial(0, TrialState.COMPLETE), _trial(1, TrialState.WAITING, retry_of=0)]
        assert slots_taken(trials, own_number=1) == 1


class TestRetryStarted:
    @pytest.fixture(name="study")
    def fixture_study(self) -> optuna.Study:
        """An in-memory study to receive re-queued trials."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study()

    def _waiting(self, study: optuna.Study) -> list[FrozenTrial]:
        return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))

    def test_a_claimed_trial_is_requeued_without_its_claim(self, study: optuna.Study) -> None:
        """Its parameters run again; the slot is claimed again by whoever runs them."""
        _RetryStarted(max_retry=2)(study, _trial(7, TrialState.FAIL, claimed=True))
        (retry,) = self._waiting(study)
        assert retry.params == {"fast": 5} and SLOT not in retry.user_attrs
        assert retry.system_attrs["failed_trial"] == 7

    def test_a_trial_that_started_nothing_is_not_requeued(self, study: optuna.Study) -> None:
        """No claim, no parameter (or a surplus trial): nothing to re-run, nothing left waiting."""
        bare = optuna.trial.create_trial(state=TrialState.FAIL)
        surplus = _trial(8, TrialState.FAIL, claimed=True)
        surplus.user_attrs = {**surplus.user_attrs, "surplus": True}
        _RetryStarted(max_retry=2)(study, bare)
        _RetryStarted(max_retry=2)(study, surplus)
        assert self._waiting(study) == []


def test_the_decision_marker_is_written_once(tmp_path: Path) -> None:
    """The first claim wins; the second reads the first's marker; another total is new."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=url)

    def lock() -> Any:
        return storage_lock(url, "study:s")

    assert claim_decision(study, lock, 10, {"decision": "apply", "run_id": "a"}) is None
    second = claim_decision(study, lock, 10, {"decision": "hold", "run_id": "b"})
    assert second == {"decision": "apply", "run_id": "a"}
    assert claim_decision(study, lock, 20, {"decision": "hold", "run_id": "b"}) is None


def test_only_sqlite_and_postgresql_storages_are_locked() -> None:
    """Another dialect has no lock to offer several hosts: refused with the reason."""
    with pytest.raises(ConfigError, match="only sqlite"), storage_lock("mysql://x/y", "schema"):
        pass


@pytest.fixture(name="bars", scope="module")
def fixture_bars() -> Candles:
    """1,500 real EUR/USD M1 bars (tests/data, see PROVENANCE.md)."""
    return load_candles(CANDLES)


def test_two_state_dirs_on_one_storage_decide_the_study_once(bars: Candles, tmp_path: Path) -> None:
    """Two live runs (two 'hosts' on one host) share a study: the first applies, the second
    finds the study complete and decided, applies nothing and says who decided."""
    config = AutotuneConfig(
        folds=1,
        validate_fraction=0.5,
        embargo_bars=10,
        min_trades=2,
        n_trials=8,
        max_candle_age=timedelta(days=1),
        min_dsr=0.0,
        min_oos_improvement=-math.inf,
    )
    url = f"sqlite:///{tmp_path / 'shared' / 'optuna.db'}"
    now = from_epoch_us(int(bars.time_us[-1])) + timedelta(hours=1)
    records, stores = [], []
    for host in ("a", "b"):
        store = StateStore(tmp_path / host, REGISTRY)
        ledger = SqlLedger.open(f"sqlite:///{tmp_path / f'{host}.db'}")
        records.append(run_cycle(store, ledger, config, bars, CANDLES, now, storage_url=url))
        stores.append(store)
    first, second = records
    assert first["decision"] == "apply" and first["applied"], first["reasons"]
    assert second["decision"] == "hold" and not second["applied"]
    assert second["reasons"][-1].startswith(f"already_decided: apply by run {first['run_id']}")
    assert stores[1].read_effective().version == stores[1].base_version()
    assert second["metrics"]["study"]["n_tried"] == 8  # the same 8 trials, none added
    # the second run found the study full and joined no worker: one seed, config.seed itself
    assert second["metrics"]["study"]["seeds"] == [config.seed]


def test_a_shadow_run_takes_no_decision(bars: Candles, tmp_path: Path) -> None:
    """A shadow run decides for its record only: a later live run still decides the study."""
    config = replace(
        AutotuneConfig(folds=1, validate_fraction=0.5, embargo_bars=10, min_trades=2, n_trials=6),
        max_candle_age=timedelta(days=1),
        min_dsr=0.0,
        min_oos_improvement=-math.inf,
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    now = from_epoch_us(int(bars.time_us[-1])) + timedelta(hours=1)
    store = StateStore(tmp_path / "state", REGISTRY)
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    shadow = run_cycle(store, ledger, config, bars, CANDLES, now, storage_url=url, shadow=True)
    assert not any(r.startswith("already_decided") for r in shadow["reasons"])
    live = run_cycle(store, ledger, config, bars, CANDLES, now, storage_url=url)
    assert live["decision"] == "apply", live["reasons"]
