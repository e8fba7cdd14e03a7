"""Secrets: the OANDA token and database passwords never appear in any output of a full run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from autolearn.testing.oanda_v20 import FakeV20Server, Fault

DATA = Path(__file__).resolve().parents[1] / "data" / "oanda"
TOKEN = "tok-5e3b1d7f9a2c-RELIABILITY-SECRET-8c4e"
PASSWORD = "pw-Qx7!reliability-secret"
ACCOUNT = "001-009-0000000-002"


def _scan(root: Path, secrets: tuple[str, ...]) -> tuple[int, list[str]]:
    """Bytes of every file under ``root`` searched for each secret (raw and URL-encoded)."""
    from urllib.parse import quote

    needles = [s.encode() for s in secrets] + [quote(s, safe="").encode() for s in secrets]
    scanned, leaks = 0, []
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            data = path.read_bytes()
            scanned += len(data)
            leaks += [f"{path}: {n.decode()}" for n in needles if n in data]
    return scanned, leaks


@pytest.mark.slow
def test_full_run_never_prints_or_stores_secrets(
    drivers: ModuleType,
    zygote: Any,
    bot: Any,
    pg_url_or_none: str | None,
    tmp_path: Path,
    figures: dict[str, Any],
) -> None:
    """ingest --oanda (with faults and a 401), tune, policy, history and errors leak nothing."""
    session = json.loads((DATA / "usd_jpy_session.json").read_text())["transactions"]
    logs = tmp_path / "logs"
    logs.mkdir()
    with FakeV20Server(account_id=ACCOUNT, token=TOKEN, transactions=session, page_size=20) as fake:
        fake.script(
            Fault.http(429, headers={"Retry-After": "0"}),
            Fault.http(503, body={"errorMessage": f"echo Bearer {TOKEN}"}),
            Fault.truncated(),
        )
        env = {
            **bot.env(),
            "OANDA_TOKEN": TOKEN,
            "OANDA_ACCOUNT_ID": ACCOUNT,
            "OANDA_API_URL": fake.base_url,
        }
        bad_pg = f"postgresql+psycopg://autolearn:{PASSWORD}@127.0.0.1:9/ledger"
        runs: list[tuple[list[str], dict[str, str]]] = [
            (["ingest", "--oanda"], env),
            (["ingest", "--oanda"], {**env, "OANDA_ACCOUNT_ID": "001-009-9999999-001"}),  # 403
            (["ingest", "--oanda"], {**env, "OANDA_TOKEN": TOKEN + "x"}),  # 401
            (["tune"], env),
            (["policy"], env),
            (["history", "--json"], env),
            (["tune"], {**env, "AUTOLEARN_LEDGER_URL": bad_pg}),  # unreachable DB
            (["policy"], {**env, "AUTOLEARN_LEDGER_URL": bad_pg}),
            (["ingest", "--oanda"], {**env, "AUTOLEARN_LEDGER_URL": bad_pg}),
        ]
        if pg_url_or_none:
            with_pw = pg_url_or_none.replace("postgres@", f"postgres:{PASSWORD}@", 1)
            runs += [
                (["ingest", "--oanda"], {**env, "AUTOLEARN_LEDGER_URL": with_pw}),
                (["tune"], {**env, "AUTOLEARN_LEDGER_URL": with_pw}),
            ]
        codes = []
        for i, (argv, run_env) in enumerate(runs):
            log = logs / f"run{i}.log"
            result = zygote.run([drivers.Job(argvs=[argv], env=run_env, cwd=bot.root, log=log)])[0]
            codes.append(result.rc)
            assert result.rc != 70, log.read_text()
    assert codes[0] == 0 and 0 not in (codes[1], codes[2])
    scanned, leaks = _scan(tmp_path, (TOKEN, PASSWORD))
    figures["secrets"] = {"runs": len(runs), "bytes_scanned": scanned, "leaks": len(leaks)}
    assert leaks == []


@pytest.fixture(name="pg_url_or_none")
def fixture_pg_url_or_none() -> str | None:
    """The PostgreSQL URL when a server is configured (trust auth ignores the password)."""
    return os.environ.get("AUTOLEARN_TEST_PG_URL") or None
