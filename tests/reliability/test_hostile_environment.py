"""Hostile environment: links, special files, bad state dirs, future and absurd values, token
forms, unknown pockets and concurrent PostgreSQL first use, each against real CLI runs.

Every scenario is one an attacker or a bad day produces (issue 13). After each, the invariants:
the run exits with README's code for what happened (65 bad data / unreadable state, 73 refused
tracked path, never 70), the message names what and where, no tracked file changed
(``git status`` empty), no knob moved unless the run was meant to move it, nothing was lost.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from autolearn.adapters.logs import FRAGMENT_CHARS
from autolearn.gates import Gates
from autolearn.ledger.sql import SqlLedger
from autolearn.testing.oanda_v20 import FakeV20Server

KNOB = "strategies.MomentumPulse.min_confidence"
ACCOUNT = "001-009-0000000-002"
TOKEN = "5e3b1d7f9a2c4e6a8b0c1d2e3f405162-738495a6b7c8d9e0f1a2b3c4d5e6f708"
DATA = Path(__file__).resolve().parents[1] / "data" / "oanda"


@pytest.fixture(name="hostile")
def fixture_hostile(figures: dict[str, Any]) -> Iterator[dict[str, int]]:
    """Counters of this family, merged into the suite's figures."""
    counts: dict[str, int] = {}
    yield counts
    merged = figures.setdefault("hostile_environment", {})
    for key, value in counts.items():
        merged[key] = merged.get(key, 0) + value


def _run(
    drivers: ModuleType, zygote: Any, bot: Any, argv: list[str], log: Path, **env: str
) -> tuple[int, str]:
    job = drivers.Job(argvs=[argv], env={**bot.env(), **env}, cwd=bot.root, log=log)
    result = zygote.run([job])[0]
    return result.rc, log.read_text()


def _tracked_bytes(root: Path) -> dict[str, bytes]:
    names = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.split(b"\0")
    return {n.decode(): (root / n.decode()).read_bytes() for n in names if n}


def _set(value: str = "0.65") -> list[str]:
    return ["set", KNOB, value, "--reason", "hostile"]


def test_links_and_special_files(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, hostile: dict[str, int]
) -> None:
    """History/effective links and FIFO / device / directory files: 65 naming the file, no hang."""
    tracked = _tracked_bytes(bot.root)
    rc, text = _run(drivers, zygote, bot, _set("0.6"), tmp_path / "warm.log")
    assert rc == 0, text
    state = bot.state_dir
    cases: list[tuple[str, str]] = []
    for name, make in (
        ("history.jsonl", lambda p: p.symlink_to(bot.root / "config" / "knobs.yaml")),
        ("effective.json", lambda p: p.symlink_to(bot.root / "config" / "knobs.yaml")),
        ("effective.json", lambda p: p.symlink_to(tmp_path / "dangling.json")),
        ("effective.json", lambda p: p.symlink_to("/dev/zero")),
        ("effective.json", os.mkfifo),
        ("history.jsonl", os.mkfifo),
        ("effective.json", lambda p: p.mkdir()),
    ):
        target = state / name
        saved = tmp_path / f"saved-{name}"
        os.replace(target, saved)
        make(target)
        for argv in (_set(), ["status"]):
            started = time.monotonic()
            rc, text = _run(drivers, zygote, bot, argv, tmp_path / f"case{len(cases)}.log")
            cases.append((name, argv[0]))
            assert time.monotonic() - started < 60, f"{argv[0]} hung on {name}"
            assert rc != 70 and rc != 0, (name, argv, rc, text)
            if argv[0] == "set":
                assert rc == 65 and name in text, (name, text)
        if target.is_dir() and not target.is_symlink():
            target.rmdir()
        else:
            target.unlink()
        os.replace(saved, target)
        assert drivers.check_state(state, bot.registry).version  # the state is intact
    assert _tracked_bytes(bot.root) == tracked
    assert drivers.porcelain(bot.root) == ""
    hostile["link_and_special_file_runs"] = len(cases)


@pytest.mark.parametrize("where", ["config", ".", "logs/../config", "link", "config/tuning"])
def test_state_dir_inside_the_checkout(
    drivers: ModuleType,
    zygote: Any,
    bot: Any,
    tmp_path: Path,
    where: str,
    hostile: dict[str, int],
) -> None:
    """--state-dir in a tracked or unignored place: exit 73 naming it, checkout clean."""
    if where == "link":
        (bot.root / "logs").mkdir(exist_ok=True)
        (bot.root / "logs" / "elsewhere").symlink_to(bot.root / "config")
        state = str(bot.root / "logs" / "elsewhere")
    else:
        state = str(bot.root / where)
    rc, text = _run(drivers, zygote, bot, _set(), tmp_path / "run.log", AUTOLEARN_STATE_DIR=state)
    assert rc == 73, text
    assert "state directory" in text
    assert drivers.porcelain(bot.root) == "" or where == "link"  # the link itself is untracked
    if where == "link":
        (bot.root / "logs" / "elsewhere").unlink()
        assert drivers.porcelain(bot.root) == ""
    hostile["state_dirs_refused"] = 1


def test_future_and_absurd_values_move_nothing(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, hostile: dict[str, int]
) -> None:
    """A 9999 close time and 1e300 pips: rejected at ingest; a stored one cannot crash a run."""
    now = datetime.now(UTC)
    path = tmp_path / "hostile.csv"
    header = ["ticket_id", "pocket", "units", "entry_price", "close_price", "entry_time"]
    header += ["close_time", "realized_pl", "pl_pips"]
    recent = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent_close = (now - timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        ["h1", "micro", "1000", "150", "150.1", recent, "9999-12-31T00:00:00Z", "10", "1"],
        ["h2", "micro", "1000", "150", "150.1", recent, recent_close, "10", "1e300"],
        ["h3", "micro", "1000", "150", "150.1", recent, recent_close, "1e300", "1"],
        ["h4", "micro", "-5", "150", "1e300", recent, recent_close, "10", "1"],
    ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    with SqlLedger.open(bot.ledger_url) as ledger:
        before = ledger.count_trades()
    rc, text = _run(drivers, zygote, bot, ["ingest", str(path)], tmp_path / "ingest.log")
    assert rc == 0, text
    assert '"rejected":4' in text.replace(" ", ""), text
    assert "close_time" in text and "pl_pips" in text
    with SqlLedger.open(bot.ledger_url) as ledger:
        assert ledger.count_trades() == before
    # A row an older autolearn let in: the learning loops still run (no OverflowError, 70).
    with SqlLedger.open(bot.ledger_url) as ledger:
        ledger.limits = type(ledger.limits)(max_abs_pl_pips=1e308, max_abs_pl_account=1e308)
        from autolearn.testing import make_trade

        ledger.upsert_trades(
            [
                make_trade(
                    close_at=now - timedelta(minutes=30),
                    pl_pips=1e300,
                    pl_account=1.0,
                    close_price=150.1,
                )
            ]
        )
    codes = {}
    for argv in (["policy"], ["tune"], ["status"]):
        rc, text = _run(drivers, zygote, bot, argv, tmp_path / f"{argv[0]}.log")
        codes[argv[0]] = rc
        assert rc in (0, 1, 2), (argv, text)  # status: 1/2 = degraded/stopped, never 70
    assert drivers.porcelain(bot.root) == ""
    hostile["implausible_rows_rejected"] = 4
    hostile["runs_over_an_absurd_stored_row"] = len(codes)


def test_token_forms_never_printed(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, hostile: dict[str, int]
) -> None:
    """The token in a fill's `time`, `id` and a 403 body: no 12-char piece in any output."""
    session = json.loads((DATA / "usd_jpy_session.json").read_text())["transactions"]
    last = max(int(t["id"]) for t in session)
    poison = [
        {**session[-1], "id": str(last + 1), "time": TOKEN},
        {**session[-1], "id": str(last + 2), "instrument": TOKEN},  # (`id`: tests/oanda)
        {**session[-1], "id": str(last + 3), "time": TOKEN[:56]},
    ]
    with FakeV20Server(
        account_id=ACCOUNT, token=TOKEN, transactions=[*session, *poison], page_size=50
    ) as fake:
        env = {"OANDA_TOKEN": TOKEN, "OANDA_ACCOUNT_ID": ACCOUNT, "OANDA_API_URL": fake.base_url}
        outputs = []
        for i, extra in enumerate([{}, {"OANDA_ACCOUNT_ID": "001-009-9999999-001"}]):
            rc, text = _run(
                drivers,
                zygote,
                bot,
                ["ingest", "--oanda"],
                tmp_path / f"oanda{i}.log",
                **{**env, **extra},
            )
            assert rc != 70, text
            outputs.append(text)
    blob = "\n".join(outputs)
    pieces = [
        TOKEN[i : i + FRAGMENT_CHARS]
        for i in range(len(TOKEN) - FRAGMENT_CHARS + 1)
        if TOKEN[i : i + FRAGMENT_CHARS] in blob
    ]
    assert pieces == [], blob[:2000]
    assert "rejected" in outputs[0]
    hostile["token_forms_scanned"] = len(poison) + 1
    hostile["token_fragments_leaked"] = len(pieces)


def test_unknown_pockets_fail_closed(bot: Any, hostile: dict[str, int]) -> None:
    """With micro blocked, every misspelling of it is denied too (never allowed at size 1.0)."""
    from autolearn.core.apply_guard import ApplyKind

    now = datetime.now(UTC)
    bot.store(bot.state_dir).apply(
        "operator", {"pockets.micro.allow_new": False}, now, kind=ApplyKind.OPERATOR
    )
    gates = Gates.open(bot.ledger_url, bot.state_dir, bot.registry, clock=lambda: 0.0)
    names = ["micro", "mirco", "MICRO", "micro ", " micro", "Micro", "micro\t", "m"]
    verdicts = {n: gates.check_entry("MomentumPulse", n, "long", 150.0, now) for n in names}
    assert all(not v.allowed and v.size_multiplier == 0.0 for v in verdicts.values()), verdicts
    assert {v.reasons[0].code for n, v in verdicts.items() if n != "micro"} == {"unknown_pocket"}
    hostile["unknown_pocket_checks"] = len(names) - 1


@pytest.mark.postgres
def test_concurrent_postgres_first_ingests(
    drivers: ModuleType,
    zygote: Any,
    bot: Any,
    pg_url: str,
    qr_csv: Path,
    tmp_path: Path,
    hostile: dict[str, int],
) -> None:
    """4 simultaneous first `ingest`s into a brand-new PostgreSQL database: all 0, none lost."""
    server = sa.make_url(pg_url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    rounds, lost, names = 3, 0, []
    try:
        for r in range(rounds):
            name = f"autolearn_hostile_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            names.append(name)
            url = server.set(database=name).render_as_string(hide_password=False)
            jobs = [
                drivers.Job(
                    argvs=[["ingest", str(qr_csv)]],
                    env={**bot.env(), "AUTOLEARN_LEDGER_URL": url},
                    cwd=bot.root,
                    log=tmp_path / f"pg{r}-{w}.log",
                )
                for w in range(4)
            ]
            results = zygote.run(jobs)
            logs = [j.log.read_text() for j in jobs]
            assert [x.rc for x in results] == [0] * 4, logs
            with SqlLedger.open(url) as ledger:
                stored = ledger.count_trades()
            reference = SqlLedger.open(f"sqlite:///{tmp_path / f'ref{r}.db'}")
            try:
                from autolearn.importers.quantrabbit import import_path

                expected = reference.upsert_trades(import_path(qr_csv).accepted).inserted
            finally:
                reference.close()
            lost += expected - stored
            assert stored == expected
    finally:
        with admin.connect() as conn:
            for db in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.dispose()
    hostile["pg_first_ingest_rounds"] = rounds
    hostile["pg_rows_lost"] = lost


def test_malformed_state_never_crashes_a_command(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, hostile: dict[str, int]
) -> None:
    """Deep nesting and wrong field types in history, control and policy state: never exit 70."""
    rc, text = _run(drivers, zygote, bot, _set("0.6"), tmp_path / "warm.log")
    assert rc == 0, text
    state = bot.state_dir
    with (state / "history.jsonl").open("a") as handle:
        handle.write("[" * 3000 + "]" * 3000 + "\n")
        handle.write(json.dumps({"mechanism": "tuner", "reasons": 5, "at": "x"}) + "\n")
    runs = 0
    for name, doc in (
        (None, None),
        ("control.json", {"schema_version": 1, "mechanisms": ["tuner"]}),
        ("mechanisms/policy.json", {"schema_version": 1, "scopes": {"micro": "blocked"}}),
    ):
        if name is not None:
            (state / name).parent.mkdir(parents=True, exist_ok=True)
            (state / name).write_text(json.dumps(doc))
        for argv in (["status"], ["history"], _set("0.65"), ["tune"], ["policy"]):
            rc, text = _run(drivers, zygote, bot, argv, tmp_path / f"m{runs}.log")
            runs += 1
            assert rc != 70, (name, argv, text)
            if rc == 65:
                assert ".json" in text or "history" in text, text  # names the file
        if name is not None:
            (state / name).unlink()
    assert drivers.porcelain(bot.root) == ""
    hostile["malformed_state_runs"] = runs


def test_deleted_effective_is_reported_and_restorable(
    drivers: ModuleType, zygote: Any, bot: Any, tmp_path: Path, hostile: dict[str, int]
) -> None:
    """effective.json deleted by a clean-up job: status degraded naming the version, set 65,
    a worker keeps the block, and ``rollback --to`` the recorded version restores it."""
    from autolearn.runtime import Tuning

    rc, text = _run(
        drivers, zygote, bot, ["set", "pockets.micro.allow_new", "false", "--reason", "x"],
        tmp_path / "block.log",
    )  # fmt: skip
    assert rc == 0, text
    version = bot.store().read_effective().version
    worker = Tuning(bot.state_dir, bot.registry, refresh_s=0)
    assert worker.get("pockets.micro.allow_new") is False
    (bot.state_dir / "effective.json").unlink()
    assert worker.get("pockets.micro.allow_new") is False and worker.degraded
    rc, text = _run(drivers, zygote, bot, ["status"], tmp_path / "status.log")
    assert rc == 1 and "missing" in text and version in text, text
    rc, text = _run(drivers, zygote, bot, _set(), tmp_path / "set.log")
    assert rc == 65 and f"rollback --to {version}" in text, text
    argv = ["rollback", "--to", version, "--reason", "restore after clean-up"]
    rc, text = _run(drivers, zygote, bot, argv, tmp_path / "rollback.log")
    assert rc == 0, text
    assert bot.store().read_effective().version == version
    assert Tuning(bot.state_dir, bot.registry, refresh_s=0).degraded is None
    hostile["lost_effective_recoveries"] = 1
