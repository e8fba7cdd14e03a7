"""Reliability bench: the suite's drivers with bigger counts; prints the README's figures table.

What it is: ``python bench/bench_reliability.py [--kills N] [--storm-rounds N] [--broker N]``
runs the same kill campaign, concurrency storm and broker fault storm as
``tests/reliability`` (loaded from ``tests/reliability/_drivers.py``) in a temporary directory
and prints one Markdown row per family. It must not assert thresholds (the tests do) nor touch
anything outside its temporary directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def _drivers() -> ModuleType:
    name = "autolearn_reliability_drivers"
    spec = importlib.util.spec_from_file_location(name, REPO / "tests/reliability/_drivers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--fresh-kills", type=int, default=20)
    parser.add_argument("--storm-rounds", type=int, default=30)
    parser.add_argument("--broker", type=int, default=200, help="broker storm scenarios")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    d = _drivers()
    from autolearn.adapters.logs import configure_logging
    from autolearn.core.apply_guard import ApplyKind

    configure_logging(open(os.devnull, "w"))  # noqa: SIM115 - the retry warnings would drown the table

    rows: list[tuple[str, float, dict[str, object]]] = []
    with tempfile.TemporaryDirectory(prefix="autolearn-bench-rel-") as tmp, d.Zygote() as zygote:
        work = Path(tmp)
        bot = d.make_bot(work / "bot")
        csv = DATA / "quantrabbit" / "trades_latest.part-0001-0300.csv"

        t0 = time.monotonic()
        (work / "kills").mkdir()
        campaign = d.KillCampaign(zygote, bot, work / "kills", csv, seed=args.seed)
        campaign.prepare()
        kills = campaign.run(args.kills, fresh_kills=args.fresh_kills)
        rows.append(("crash consistency (SIGKILL)", time.monotonic() - t0, kills.to_json()))

        t0 = time.monotonic()
        template = work / "storm-template"
        bot.store(template).apply(
            "operator", {"gates.stage.enabled": False}, datetime.now(UTC), kind=ApplyKind.OPERATOR
        )
        storm = d.StormFigures()
        for i in range(args.storm_rounds):
            (work / f"storm{i}").mkdir()
            d.storm_round(zygote, bot, template, work / f"storm{i}", storm, n_each=3)
        rows.append(("concurrency storm", time.monotonic() - t0, storm.to_json()))

        t0 = time.monotonic()
        log = [
            *json.loads((DATA / "oanda" / "usd_jpy_session.json").read_text())["transactions"],
            *json.loads((DATA / "oanda" / "partial_and_closeout.json").read_text())["transactions"],
        ]
        broker = d.BrokerFigures()
        (work / "broker").mkdir()
        for seed in range(args.broker):
            d.broker_storm(log, work / "broker", seed, broker)
        rows.append(("broker fault storm", time.monotonic() - t0, broker.to_json()))

    print("| family | seconds | figures |")
    print("|---|---:|---|")
    for family, seconds, figures in rows:
        print(f"| {family} | {seconds:.0f} | `{json.dumps(figures, sort_keys=True)}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
