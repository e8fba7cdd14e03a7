"""Gather the facts ``doctor``, ``deploy-check`` and ``status`` judge: git, systemctl, ledger.

Imperative shell: runs fixed ``git``/``systemctl`` argv lists (never a shell) with timeouts and
turns their answers into the pure modules' fact values. Decides nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from autolearn.adapters.gitguard import git_toplevel, tracked_under
from autolearn.adapters.logs import redact
from autolearn.core.model import Trade
from autolearn.errors import AutolearnError, ConfigError, StateError
from autolearn.ops.deploy import DeployFacts
from autolearn.ops.doctor import ConfigFacts, GitFacts, PathFacts, TimerFacts
from autolearn.ops.schedules import unit_base
from autolearn.ops.status import LedgerProbe

__all__ = [
    "git",
    "probe_config",
    "probe_deploy",
    "probe_git",
    "probe_ledger",
    "probe_path",
    "probe_timers",
    "recent_trades",
    "sqlite_path",
    "systemd_unavailable",
]

_TIMEOUT_S = 30


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``git -C root args...`` (no check); ``StateError`` when git cannot be run at all."""
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StateError(f"cannot run git in {root}: {exc}") from exc


def probe_git(root: Path) -> GitFacts:
    out = git(root, "status", "--porcelain")
    if out.returncode != 0:
        return GitFacts(root=str(root), porcelain=None, error=out.stderr.strip())
    return GitFacts(root=str(root), porcelain=out.stdout)


def probe_path(label: str, path: Path, *, is_dir: bool) -> PathFacts:
    """Is ``path`` inside a checkout, tracked, ignored? (it need not exist yet)."""
    resolved = path.resolve()
    top = git_toplevel(resolved if resolved.is_dir() else resolved.parent)
    if top is None:
        return PathFacts(label=label, path=str(resolved), inside_checkout=False)
    try:
        resolved.relative_to(top)
    except ValueError:
        return PathFacts(label=label, path=str(resolved), inside_checkout=False)
    tracked = (
        sorted(str(p.relative_to(top)) for p in tracked_under(resolved))
        if (resolved.exists())
        else []
    )
    # a child of an ignored directory is ignored even before the directory exists
    probe = resolved / ".autolearn-probe" if is_dir else resolved
    ignored = git(top, "check-ignore", "-q", str(probe)).returncode == 0
    return PathFacts(
        label=label, path=str(resolved), inside_checkout=True, tracked=tracked, ignored=ignored
    )


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite ledger URL (or a plain path), else ``None``."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if "://" not in url:
        return Path(url)
    return None


def probe_deploy(
    root: Path, expected: str, *, remote: str, branch: str, fetch: bool
) -> DeployFacts:
    if fetch:
        out = git(root, "fetch", "--quiet", remote, branch)
        if out.returncode != 0:
            raise StateError(f"git fetch {remote} {branch} failed in {root}: {out.stderr.strip()}")
    remote_ref = f"{remote}/{branch}"

    def rev(name: str) -> str | None:
        out = git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        return out.stdout.strip() if out.returncode == 0 else None

    status = git(root, "status", "--porcelain", "--untracked-files=no")
    if status.returncode != 0:
        raise StateError(f"{root} is not a git checkout: {status.stderr.strip()}")
    dirty = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    remote_sha = rev(remote_ref)
    head_on_remote = None
    ahead = None
    if remote_sha is not None:
        head_on_remote = (
            git(root, "merge-base", "--is-ancestor", "HEAD", remote_ref).returncode == 0
        )
        count = git(root, "rev-list", "--count", f"HEAD..{remote_ref}")
        ahead = int(count.stdout.strip()) if count.returncode == 0 else None
    return DeployFacts(
        root=str(root),
        expected=expected,
        expected_sha=rev(expected),
        head_sha=rev("HEAD"),
        dirty_tracked=dirty,
        remote_ref=remote_ref,
        remote_sha=remote_sha,
        head_on_remote=head_on_remote,
        remote_ahead=ahead,
    )


def systemd_unavailable(user_mode: bool = False) -> str | None:
    """Why systemctl cannot answer here (``None`` when it can)."""
    if shutil.which("systemctl") is None:
        return "systemctl not found (not a systemd host)"
    if not Path("/run/systemd/system").is_dir():  # sd_booted(3)
        return "systemd is not PID 1 on this host (a container or CI)"
    if user_mode:
        probe = subprocess.run(
            ["systemctl", "--user", "is-system-running"],
            capture_output=True,
            text=True,
            check=False,
            timeout=_TIMEOUT_S,
        )
        if "Failed to connect" in probe.stderr:
            return f"no user systemd instance: {probe.stderr.strip()}"
    return None


def probe_timers(
    enabled: Mapping[str, bool], *, user_mode: bool
) -> tuple[list[TimerFacts], str | None]:
    why = systemd_unavailable(user_mode)
    facts = []
    for mechanism, is_enabled in enabled.items():
        active = None
        if why is None:
            scope = ["--user"] if user_mode else []
            out = subprocess.run(
                ["systemctl", *scope, "is-active", f"{unit_base(mechanism)}.timer"],
                capture_output=True,
                text=True,
                check=False,
                timeout=_TIMEOUT_S,
            )
            active = out.stdout.strip() or "unknown"
        facts.append(TimerFacts(mechanism=mechanism, enabled=is_enabled, active=active))
    return facts, why


def probe_config(name: str, source: str, load: Callable[[], object]) -> ConfigFacts:
    """Run one config's own loader; a refused config is a fact (its problems), not a crash."""
    try:
        load()
    except ConfigError as exc:
        return ConfigFacts(name=name, source=source, problems=tuple(exc.problems) or (str(exc),))
    return ConfigFacts(name=name, source=source)


def probe_ledger(url: str, account: str = "") -> LedgerProbe:
    """Last close and trade count; an unreadable ledger is a fact (``error``), not a crash.

    Through ``open_reader``: on a ready SQLite ledger both are plain ``sqlite3`` reads, and
    ``status`` does not pay SQLAlchemy's ~0.13 s import (issue 16).
    """
    from autolearn.ledger.sqlite_reader import open_reader

    source = redact(url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return LedgerProbe(source=source, error=f"{path} does not exist")
    try:
        ledger = open_reader(url, account=account)
        try:
            return LedgerProbe(
                source=source, last_close_at=ledger.last_close_at(), trades=ledger.count_trades()
            )
        finally:
            ledger.close()
    except AutolearnError as exc:
        return LedgerProbe(source=source, error=redact(str(exc)))


def recent_trades(url: str, since: datetime, account: str = "") -> list[Trade]:
    from autolearn.ledger.sqlite_reader import open_reader

    ledger = open_reader(url, account=account)
    try:
        return ledger.trades(closed_since=since)
    finally:
        ledger.close()
