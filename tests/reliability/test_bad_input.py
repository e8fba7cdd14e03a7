"""Bad input: fuzzed CLI arguments, state files, registry, imports and OANDA JSON.

No crash without a clear error (exit 70 = internal error never happens), no knob moved by
invalid data, and rejected input counted and reported.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autolearn.adapters.state import StateStore
from autolearn.cli import main
from autolearn.core.apply_guard import ApplyKind
from autolearn.core.knobs import problems_with_value
from autolearn.core.registry import parse_registry
from autolearn.errors import AutolearnError, ConfigError, StateError
from autolearn.ledger.sql import SqlLedger
from autolearn.oanda.transactions import map_transactions
from autolearn.runtime import Tuning
from autolearn.settings import load_registry, packaged_registry_text

DATA = Path(__file__).resolve().parents[1] / "data"
REGISTRY = load_registry(None)
KNOB = "strategies.MomentumPulse.min_confidence"
# exit codes a clear error may use; 70 (internal error) and 1 (undecided) are failures
CLEAR = {0, 2, 65, 73, 77, 78}
_HC = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
# a CLI example costs ~0.3 s (registry parse, git ls-files); pure ones cost microseconds
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=_HC)
FUZZ_CLI = settings(max_examples=15, deadline=None, suppress_health_check=_HC)
COUNTS: dict[str, int] = {}


def _count(family: str, n: int = 1) -> None:
    COUNTS[family] = COUNTS.get(family, 0) + n


@pytest.fixture(name="state", scope="module")
def fixture_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir with one operator change (so 'unchanged' is a real version)."""
    root = tmp_path_factory.mktemp("badinput") / "state"
    StateStore(root, REGISTRY).apply(
        "operator", {KNOB: 0.6}, datetime.now(UTC), kind=ApplyKind.OPERATOR
    )
    return root


@pytest.fixture(name="report_counts", scope="module", autouse=True)
def fixture_report_counts(figures: dict[str, Any]) -> Any:
    """Put the number of fuzzed inputs of each kind in the figures."""
    yield
    figures["bad_input"] = dict(COUNTS)


def _assert_legal(state: Path) -> str:
    effective = StateStore(state, REGISTRY).read_effective()
    for knob, value in effective.values.items():
        assert problems_with_value(REGISTRY.spec(knob), value) == [], (knob, value)
    return effective.version


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_values = st.one_of(
    _text,
    st.sampled_from(["nan", "NaN", "Infinity", "-1e309", "1e400", "null", "[]", "{}", "true"]),
    st.floats(allow_nan=True).map(repr),
    st.integers().map(str),
)
_knobs = st.one_of(
    st.sampled_from([KNOB, "pockets.micro.allow_new", "M1Scalper.timeout_sec", "../../etc/x"]),
    _text,
)


@FUZZ_CLI
@given(knob=_knobs, value=_values, reason=_text)
def test_fuzzed_set_arguments(
    state: Path, knob: str, value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`set` with junk names/values exits clearly, says why, never stores an illegal value."""
    before = _assert_legal(state)
    rc = main(["--state-dir", str(state), "set", knob, value, "--reason", reason])
    out = capsys.readouterr()
    _count("cli_arguments")
    assert rc in CLEAR, out.err
    after = _assert_legal(state)
    if rc != 0:
        assert after == before
        # the reason is on stderr (errors) or in the decision record (guard refusals)
        assert out.err.strip() or '"adopted":false' in out.out, "an error exit must say why"


@FUZZ_CLI
@given(command=st.sampled_from(["rollback", "freeze", "history", "explain", "unblock"]), arg=_text)
def test_fuzzed_other_commands(
    state: Path, command: str, arg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """rollback/freeze/history/explain/unblock with junk arguments never crash nor move a knob."""
    before = _assert_legal(state)
    argv = {
        "rollback": ["rollback", "--to", arg, "--reason", "fuzz"],
        "freeze": ["freeze", arg, "--reason", "fuzz"],
        "history": ["history", "--since", arg],
        "explain": ["explain", arg],
        "unblock": ["unblock", arg, "--reason", "fuzz"],
    }[command]
    rc = main(["--state-dir", str(state), *argv])
    out = capsys.readouterr()
    _count("cli_arguments")
    assert rc in CLEAR | {1} if command == "explain" else rc in CLEAR, out.err
    if command == "rollback" and rc != 0:
        assert _assert_legal(state) == before


# -- state files ------------------------------------------------------------------------------

_STATE_FILES = ["effective.json", "control.json", "mechanisms/tuner.json", "mechanisms/policy.json"]
_junk_docs = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda d: json.dumps(d).encode()),
    st.sampled_from(
        [
            b'{"schema_version": 99, "version": "v0", "values": {}}',
            b'{"schema_version": 1, "version": "vdeadbeef0000", "values": {"x": 1}}',
            b'{"schema_version": 1, "version": "v44136fa355b3", "values": {}, "changes": 3}',
            b'{"schema_version": 1, "scopes": {"micro": {"status": "bogus"}}}',
            b"",
            b"\x00\xff",
        ]
    ),
)


@settings(max_examples=8, deadline=None, suppress_health_check=_HC)
@given(target=st.sampled_from(_STATE_FILES), data=_junk_docs)
def test_fuzzed_state_files(
    tmp_path: Path, state: Path, target: str, data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt state file is a StateError (exit 65), the loader never raises, nothing moves."""
    work = tmp_path / "fuzzed"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(state, work)
    path = work / target
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    _count("state_files")
    store = StateStore(work, REGISTRY)
    try:
        store.read_effective()
        store.read_control()
        store.read_mechanism("tuner")
    except StateError:
        pass
    tuning = Tuning(work, REGISTRY, refresh_s=0)
    assert tuning.get(KNOB) in (0.6, REGISTRY.spec(KNOB).default)  # last good or recovered
    snapshot_before = sorted(p.name for p in (work / "snapshots").iterdir())
    for argv in (
        ["set", KNOB, "0.62", "--reason", "fuzz"],
        ["diff"],
        ["freeze", "tuner", "--reason", "x"],
    ):
        rc = main(["--state-dir", str(work), *argv])
        err = capsys.readouterr().err
        assert rc in CLEAR, err
        if rc != 0:
            assert "error" in err
    if target == "effective.json":
        # a corrupt merged view must never be silently replaced by a new apply on top of it
        try:
            StateStore(work, REGISTRY).read_effective()
        except StateError:
            assert sorted(p.name for p in (work / "snapshots").iterdir()) == snapshot_before


# -- knob registry -------------------------------------------------------------------------------

_REGISTRY_LINES = packaged_registry_text().splitlines()


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(_REGISTRY_LINES) - 1),
            st.sampled_from(["drop", "dup", "junk", "swap_owner", "bad_bound", "python_tag"]),
            _text,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_registry(tmp_path: Path, edits: list[tuple[int, str, str]]) -> None:
    """A mutated registry loads or is a ConfigError naming the problem; YAML tags never run."""
    lines = list(_REGISTRY_LINES)
    for index, op, junk in edits:
        index %= len(lines)
        if op == "drop":
            del lines[index]
        elif op == "dup":
            lines.insert(index, lines[index])
        elif op == "junk":
            lines[index] = lines[index][: len(lines[index]) // 2] + junk
        elif op == "swap_owner":
            lines[index] = lines[index].replace("owner: tuner", "owner: policy")
        elif op == "bad_bound":
            lines[index] = lines[index].replace("bounds: [", "bounds: [9e9, ")
        else:
            lines[index] = lines[index] + " !!python/object/apply:os.system ['touch pwned']"
    path = tmp_path / "knobs.yaml"
    path.write_text("\n".join(lines))
    _count("registry")
    try:
        load_registry(path)
    except ConfigError as exc:
        assert str(exc).strip()
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_registry_rejects_non_mapping_shapes() -> None:
    """Registry documents of the wrong shape are ConfigErrors, never TypeErrors."""
    for doc in (None, [], "x", {"knobs": []}, {"knobs": {"a": None}}, {"schema_version": "1"}):
        with pytest.raises(ConfigError):
            parse_registry(doc, "<fuzz>")


# -- OANDA transaction JSON ------------------------------------------------------------------------

_SESSION = json.loads((DATA / "oanda" / "usd_jpy_session.json").read_text())["transactions"]
_TIME_FORMS = [
    "2025-10-22T01:02:03.123456789Z",
    "2025-10-22 01:02:03.123456789Z",
    "2025-10-22T01:02:03Z",
    "2025-10-22T01:02:03",
    "2025-10-22T01:02:03.1234567891234Z",
    "1761094923.123456789",
    "",
]


def _mutate(tx: dict[str, Any], op: str, key: str, junk: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(tx))
    if op == "drop" and key in out:
        del out[key]
    elif op == "set":
        out[key] = junk
    elif op == "time":
        out["time"] = junk if isinstance(junk, str) else _TIME_FORMS[0]
    elif op == "null_id":
        out["id"] = None
    elif op == "partial" and out.get("tradesClosed"):
        out["tradeReduced"] = out.pop("tradesClosed")[0]
    return out


@FUZZ
@given(
    picks=st.lists(
        st.tuples(
            st.integers(0, len(_SESSION) - 1),
            st.sampled_from(["keep", "drop", "set", "time", "null_id", "partial", "dup"]),
            st.sampled_from(
                [
                    "id",
                    "type",
                    "time",
                    "instrument",
                    "tradesClosed",
                    "tradeOpened",
                    "units",
                    "price",
                    "reason",
                    "tradeReduced",
                ]
            ),
            st.one_of(
                st.sampled_from(_TIME_FORMS),
                _text,
                st.integers(),
                st.none(),
                st.lists(st.integers(), max_size=2),
            ),
        ),
        max_size=30,
    )
)
def test_fuzzed_oanda_transactions(picks: list[tuple[int, str, str, Any]]) -> None:
    """Junk, reordered, duplicated transactions never raise and every one is accounted for."""
    raw: list[Any] = []
    for index, op, key, junk in picks:
        tx = _SESSION[index]
        raw.append(tx if op in ("keep", "dup") else _mutate(tx, op, key, junk))
        if op == "dup":
            raw.append(tx)
    _count("oanda_transactions", len(raw))
    result = map_transactions(raw, {})
    accounted = (
        result.processed
        + result.duplicates
        + sum(1 for r in result.rejected if r.tx_id.startswith("#"))
    )
    assert accounted == len(raw)
    for row in result.trades:
        assert row.close_at.tzinfo is not None and row.units > 0
    for item in result.rejected:
        assert item.reason.strip()


# -- CSV and SQLite imports through the CLI ------------------------------------------------------

_CSV_ROWS = list(csv.reader((DATA / "quantrabbit" / "trades_latest.part-0001-0300.csv").open()))
_HEADER, _BODY = _CSV_ROWS[0], _CSV_ROWS[1:40]


@FUZZ_CLI
@given(
    drop_column=st.one_of(st.none(), st.sampled_from(_HEADER)),
    cells=st.lists(
        st.tuples(
            st.integers(0, len(_BODY) - 1),
            st.integers(0, len(_HEADER) - 1),
            st.one_of(
                st.sampled_from(
                    [
                        "",
                        "NULL",
                        "2025-10-15 00:09:51.320803040+00:00",
                        "2025-10-15T00:09:51.320803040Z",
                        "2025-10-15 00:09:51",
                        "nan",
                        "-0",
                        "1e999",
                    ]
                ),
                _text,
            ),
        ),
        max_size=12,
    ),
    duplicate=st.booleans(),
)
def test_fuzzed_csv_ingest(
    tmp_path: Path,
    drop_column: str | None,
    cells: list[tuple[int, int, str]],
    duplicate: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A mutated export ingests (rejects counted and named) or fails clearly; no knob moves."""
    work = tmp_path / "csv"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    body = [list(r) for r in _BODY]
    for row, col, value in cells:
        body[row][col] = value
    if duplicate:
        body += body[:5]
    header = list(_HEADER)
    if drop_column is not None:
        index = header.index(drop_column)
        header.pop(index)
        body = [r[:index] + r[index + 1 :] for r in body]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *body])
    path = work / "trades.csv"
    path.write_text(buffer.getvalue())
    _count("csv_rows", len(body))
    url = f"sqlite:///{work / 'ledger.db'}"
    rc = main(["--state-dir", str(work / "state"), "--ledger", url, "ingest", str(path)])
    out = capsys.readouterr()
    assert rc in (0, 65), out.err
    assert not (work / "state").exists(), "ingest must not touch the knob state"
    if rc == 65:
        assert "trades.csv" in out.err
        return
    record = json.loads(out.out.strip().splitlines()[-1])
    assert record["rows"] == len(body)
    assert record["accepted"] + record["rejected"] == record["rows"]
    with SqlLedger.open(url) as ledger:
        assert ledger.count_trades() == record["inserted"] + record["updated"] <= record["accepted"]


_EDGE_DB_ROWS = [
    # (ticket_id, transaction_id, close_time, units, state) -- the real formats' edge cases
    ("9001", 1, "2025-10-15 00:09:51.320803040+00:00", 1000, "CLOSED"),  # space, nanoseconds
    ("9002", 2, "2025-10-15T00:09:51.320803040Z", -500, "CLOSED"),  # T, Z
    ("9003", 3, "2025-10-15T00:09:51+00:00", 400, "PARTIAL"),  # a partial close
    ("9010", None, "2025-10-15T00:09:51+00:00", 1000, "PARTIAL"),  # partial without tx id
    (None, 4, "2025-10-15T00:09:51+00:00", 1000, "CLOSED"),  # NULL ticket id
    ("9005", 5, "2025-10-15 00:09:51", 1000, "CLOSED"),  # naive: rejected, never guessed
    ("9006", 6, "not a time", 1000, "CLOSED"),
    ("9007", 7, "2025-10-15T00:09:51Z", 0, "CLOSED"),  # zero units
    ("9008", 8, "2025-10-15T00:09:51Z", 2**63, "CLOSED"),  # beyond 64 bits
    ("9009", 9, "2025-10-15T00:09:51Z", 1000, "OPEN"),  # not closed
]


def test_sqlite_edge_rows_are_counted_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trades.db with the real formats' edge cases imports the good rows and names the rest."""
    db = tmp_path / "trades.db"
    shutil.copy(DATA / "quantrabbit" / "trades_home.db", db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM trades")
        for ticket, tx, close, units, state in _EDGE_DB_ROWS:
            conn.execute(
                "INSERT INTO trades (ticket_id, transaction_id, pocket, instrument, units, "
                "entry_price, close_price, pl_pips, entry_time, close_time, realized_pl, state) "
                "VALUES (?, ?, 'micro', 'USD_JPY', ?, 150.0, 150.1, 10.0, "
                "'2025-10-15T00:00:00Z', ?, 1.0, ?)",
                (ticket, tx, str(units) if units >= 2**63 else units, close, state),
            )
    _count("sqlite_rows", len(_EDGE_DB_ROWS))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rc = main(["--ledger", url, "--state-dir", str(tmp_path / "state"), "ingest", str(db)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    record = json.loads(out.out.strip().splitlines()[-1])
    assert record["rows"] == len(_EDGE_DB_ROWS)
    assert record["accepted"] == 3, out.out  # 9001, 9002 and the partial 9003
    assert record["rejected"] == len(_EDGE_DB_ROWS) - 3
    with SqlLedger.open(url) as ledger:
        assert ledger.count_trades() == 3
    rc = main(["--ledger", url, "--state-dir", str(tmp_path / "state"), "ingest", str(db)])
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and again["inserted"] == 0  # duplicates: a re-import changes nothing


def test_error_classes_are_all_autolearn_errors() -> None:
    """The errors a bad input may raise all carry an exit code the CLI maps (none is 70)."""
    for cls in (ConfigError, StateError):
        assert issubclass(cls, AutolearnError) and cls.exit_code in CLEAR


def test_refused_nan_record_is_strict_json(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run record of a refused NaN is strict JSON (journald consumers such as jq reject NaN)."""
    rc = main(["--state-dir", str(state), "set", KNOB, "NaN", "--reason", "fuzz"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 65

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token} in {out}")

    json.loads(out, parse_constant=refuse)
    for line in (state / "history.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=refuse)


def test_loader_survives_a_non_utf8_state_file(state: Path, tmp_path: Path) -> None:
    """effective.json that is not UTF-8 is a StateError and the worker loader keeps running."""
    work = tmp_path / "latin"
    shutil.copytree(state, work)
    (work / "effective.json").write_bytes(b"\x80\xff not utf-8")
    with pytest.raises(StateError):
        StateStore(work, REGISTRY).read_effective()
    tuning = Tuning(work, REGISTRY, refresh_s=0)
    assert tuning.get(KNOB) == 0.6  # recovered from the history's last applied version
    assert tuning.degraded
