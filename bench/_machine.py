"""Shared pieces of the benchmarks: the machine line and a scratch PostgreSQL database.

Run as ``python bench/<script>.py``, a benchmark finds this module beside it on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cpu_model", "installed_env", "pg_database"]

PYCACHE = Path(__file__).parent / "results" / "cache" / "pycache"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def installed_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) for a child that imports autolearn as an installed copy would.

    ``pip install`` compiles a wheel's modules to bytecode, and an editable install writes it
    on first import. A shell with ``PYTHONDONTWRITEBYTECODE`` set (this VM's) makes every child
    compile autolearn's ~150 modules from source instead, ~60 ms a process that no user pays.
    So the children write and reuse bytecode under bench/results/cache/pycache (gitignored).
    """
    out = dict(os.environ if env is None else env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return out


@contextmanager
def pg_database(server_url: str, prefix: str = "autolearn_bench") -> Iterator[str | None]:
    """A fresh database ``<prefix>_<pid>`` on the server, dropped after; None if unreachable."""
    import sqlalchemy as sa

    server = sa.make_url(server_url)
    name = f"{prefix}_{os.getpid()}"
    admin = sa.create_engine(
        server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        first = str(exc).strip().splitlines()[0]
        print(f"PostgreSQL: skipped, {server.render_as_string()} unreachable ({first})")
        admin.dispose()
        yield None
        return
    print(f"PostgreSQL: created database {name} on {server.render_as_string()} (dropped after)")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        print(f"PostgreSQL: dropped database {name}")
