"""``autolearn doctor``: explain what is wrong with an installation and how to fix it.

Pure: each ``check_*`` takes facts the shell gathered (``autolearn.ops.probes``) and returns
findings. The checks are the original's failure modes (original-system.md 5.1, 5.3-5.5): a dirty
checkout that silently breaks ``git pull --ff-only``, runtime state written into tracked files,
timers nobody watches, a stale ledger, two writers of one knob family, and tuner rules whose
input signal never appears in the data (the degenerate fixed point of 5.1), and a tracked config
a run would refuse (exit 78 at 3 a.m. instead of now).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autolearn.core.model import Trade
from autolearn.core.timestamps import format_utc
from autolearn.ops.findings import Finding, Severity
from autolearn.ops.schedules import unit_base
from autolearn.ops.status import LedgerProbe, ReconcileStatus

__all__ = [
    "ConfigFacts",
    "GitFacts",
    "PathFacts",
    "TimerFacts",
    "check_configs",
    "check_git_clean",
    "check_history",
    "check_ledger",
    "check_reconcile",
    "check_registry",
    "check_runtime_path",
    "check_signals",
    "check_timers",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GitFacts:
    root: str
    porcelain: str | None  # `git status --porcelain` output; None when not a checkout
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PathFacts:
    """Where a runtime writer writes, and what git says about it."""

    label: str  # "state dir", "ledger file", "metrics textfile dir"
    path: str
    inside_checkout: bool
    tracked: Sequence[str] = ()  # tracked files at or under the path
    ignored: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFacts:
    mechanism: str
    enabled: bool  # the operator's flag (control.json)
    active: str | None  # `systemctl is-active` answer; None when it could not be asked


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigFacts:
    """One config as its command would load it (``autolearn config check``)."""

    name: str  # "tuner", "scalp", "autotune", "gates", "registry"
    source: str  # the path, or "defaults (...)" when no file is configured
    problems: Sequence[str] = ()  # empty: it loads


def check_git_clean(facts: GitFacts) -> list[Finding]:
    source = f"git -C {facts.root} status --porcelain"
    if facts.porcelain is None:
        return [
            Finding(
                check="git_clean",
                severity=Severity.WARNING,
                what=f"{facts.root} is not a git checkout ({facts.error or 'no .git'}): "
                "deploys cannot be verified",
                fix="set AUTOLEARN_BOT_ROOT / --bot-root to the bot's git checkout",
                source=source,
            )
        ]
    lines = [line for line in facts.porcelain.splitlines() if line.strip()]
    dirty = [line[3:] for line in lines if not line.startswith("??")]
    untracked = [line[3:] for line in lines if line.startswith("??")]
    findings = []
    if dirty:
        findings.append(
            Finding(
                check="git_clean",
                severity=Severity.ERROR,
                what=f"tracked files modified in the bot checkout: {', '.join(dirty[:10])}: "
                "the next `git pull --ff-only` fails and the VM keeps running old code",
                fix="find the writer (runtime files belong in the state dir), then "
                "`git diff` and `git checkout -- <file>` (or commit the change upstream)",
                source=source,
            )
        )
    if untracked:
        findings.append(
            Finding(
                check="git_untracked",
                severity=Severity.WARNING,
                what=f"untracked, unignored files: {', '.join(untracked[:10])}: a future "
                "commit adding the same path would break `git pull --ff-only`",
                fix="move them out of the checkout or add them to .gitignore",
                source=source,
            )
        )
    if not findings:
        findings.append(
            Finding(check="git_clean", severity=Severity.OK, what="checkout clean", source=source)
        )
    return findings


def check_runtime_path(facts: PathFacts) -> Finding:
    check = facts.label.replace(" ", "_") + "_untracked"
    if facts.tracked:
        return Finding(
            check=check,
            severity=Severity.ERROR,
            what=f"the {facts.label} {facts.path} contains git-tracked files "
            f"({', '.join(facts.tracked[:5])}): runtime writes would dirty the checkout",
            fix=f"`git rm -r --cached {facts.path}`, add it to .gitignore, commit; or point the "
            "writer outside the checkout",
            source="git ls-files",
        )
    if facts.inside_checkout and not facts.ignored:
        return Finding(
            check=check,
            severity=Severity.WARNING,
            what=f"the {facts.label} {facts.path} is inside the checkout but not ignored: "
            "`git status` shows it and `git add -A` would track it",
            fix=f"add {facts.path} (or logs/) to the bot's .gitignore",
            source="git check-ignore",
        )
    where = "ignored by git" if facts.inside_checkout else "outside the checkout"
    return Finding(check=check, severity=Severity.OK, what=f"{facts.label} {facts.path}: {where}")


def check_timers(timers: Sequence[TimerFacts], why_unchecked: str | None) -> list[Finding]:
    """Enabled mechanisms must have an active timer; disabled ones should not."""
    enabled = [t for t in timers if t.enabled]
    if why_unchecked is not None:
        return [
            Finding(
                check="timers",
                severity=Severity.INFO,
                what=f"cannot check timers here: {why_unchecked}",
                fix="run `autolearn doctor` on the VM (where systemd runs the timers)",
                source="systemctl",
            )
        ]
    findings = []
    for t in timers:
        timer = f"{unit_base(t.mechanism)}.timer"
        if t.enabled and t.active != "active":
            findings.append(
                Finding(
                    check="timers",
                    severity=Severity.ERROR,
                    what=f"{t.mechanism} is enabled but {timer} is {t.active}: it never runs",
                    fix=f"`autolearn systemd install` then `systemctl enable --now {timer}`; "
                    f"see `journalctl -u {unit_base(t.mechanism)}`",
                    source=f"systemctl is-active {timer}",
                )
            )
        elif not t.enabled and t.active == "active":
            findings.append(
                Finding(
                    check="timers",
                    severity=Severity.WARNING,
                    what=f"{t.mechanism} is disabled but {timer} is active",
                    fix=f"`autolearn systemd disable {t.mechanism} --reason ...` (stops the timer)",
                    source=f"systemctl is-active {timer}",
                )
            )
    if not findings:
        names = ", ".join(t.mechanism for t in enabled) or "none enabled"
        findings.append(
            Finding(check="timers", severity=Severity.OK, what=f"timers match: {names}")
        )
    return findings


def check_ledger(probe: LedgerProbe, now: datetime, stale_after: timedelta) -> Finding:
    if probe.error:
        return Finding(
            check="ledger",
            severity=Severity.ERROR,
            what=f"ledger unreadable ({probe.source}): {probe.error}",
            fix="check AUTOLEARN_LEDGER_URL (and /etc/autolearn.env), the file's permissions "
            "or the database server",
            source=probe.source,
        )
    if probe.last_close_at is None:
        return Finding(
            check="ledger",
            severity=Severity.WARNING,
            what=f"ledger {probe.source} has no closed trade: every mechanism will freeze",
            fix="feed it: the bot's trade writer, or `autolearn ingest <trades.db|csv>`",
            source=probe.source,
        )
    age = now - probe.last_close_at
    if age > stale_after:
        return Finding(
            check="ledger",
            severity=Severity.WARNING,
            what=f"ledger stale: last close {format_utc(probe.last_close_at)} is "
            f"{age.total_seconds() / 3600:.1f} h old (> {stale_after}); mechanisms freeze on "
            "stale data (expected over a weekend)",
            fix="check that the bot records closed trades (writer API / `autolearn ingest`)",
            source=probe.source,
        )
    return Finding(
        check="ledger",
        severity=Severity.OK,
        what=f"ledger fresh: {probe.trades} trades, last close {format_utc(probe.last_close_at)}",
        source=probe.source,
    )


def check_reconcile(status: ReconcileStatus) -> Finding:
    """The ledger agrees with the broker (``autolearn reconcile``); not judged until configured."""
    if not status.configured:
        return Finding(
            check="reconcile",
            severity=Severity.INFO,
            what=f"reconcile {status.text}",
            fix="with OANDA access: `OANDA_TOKEN=... autolearn reconcile --account ID` daily",
            source=status.source,
        )
    if status.problem:
        return Finding(
            check="reconcile",
            severity=Severity.WARNING,
            what=status.problem,
            fix="`autolearn reconcile --account ID` lists the findings; `autolearn reconcile "
            "--account ID --repair` fetches the missing and differing trades by id from the "
            "broker, upserts them and checks again (extra rows: delete them by hand)",
            source=status.source,
        )
    return Finding(
        check="reconcile",
        severity=Severity.OK,
        what=f"reconcile {status.text}",
        source=status.source,
    )


def check_registry(problems: Sequence[str], source: str) -> Finding:
    if problems:
        return Finding(
            check="registry",
            severity=Severity.ERROR,
            what=f"knob registry {source} inconsistent: " + "; ".join(problems),
            fix="give every knob family exactly one owner (`autolearn knobs --check`)",
            source=source,
        )
    return Finding(
        check="registry", severity=Severity.OK, what=f"registry {source}: one owner per family"
    )


def check_configs(facts: Sequence[ConfigFacts], *, shown: int = 3) -> Finding:
    """Every config a run would load must load (one finding; ``shown`` problems per config)."""
    bad = [f for f in facts if f.problems]
    if bad:
        parts = []
        for f in bad:
            more = f" (+{len(f.problems) - shown} more)" if len(f.problems) > shown else ""
            parts.append(f"{f.name} {f.source}: {'; '.join(f.problems[:shown])}{more}")
        return Finding(
            check="configs",
            severity=Severity.ERROR,
            what="invalid config (its run exits 78): " + " | ".join(parts),
            fix="`autolearn config check` lists every problem with its dotted path; fix the "
            "file (a typo must not fall back to a default)",
            source="autolearn config check",
        )
    return Finding(
        check="configs",
        severity=Severity.OK,
        what="every config loads: " + ", ".join(f"{f.name} {f.source}" for f in facts),
        source="autolearn config check",
    )


def check_history(torn: bool, corrupt: Sequence[int], effective_error: str | None) -> Finding:
    if effective_error:
        return Finding(
            check="state",
            severity=Severity.ERROR,
            what=f"runtime state unreadable: {effective_error}",
            fix="`autolearn recover --reason ...` (the last good snapshot, recorded; or "
            "`--to VERSION` from `autolearn snapshots`)",
            source="effective.json",
        )
    if torn or corrupt:
        where = "torn last line" if torn else f"corrupt lines {list(corrupt)}"
        return Finding(
            check="state",
            severity=Severity.WARNING,
            what=f"history.jsonl has a {where} (skipped by readers)",
            fix="nothing to repair (append-only); check the disk and the journal for crashes",
            source="history.jsonl",
        )
    return Finding(check="state", severity=Severity.OK, what="runtime state and history readable")


def _has_exit_reason(trade: Trade) -> bool:
    return bool(trade.exit_reason.strip())


def _has_regime(trade: Trade) -> bool:
    return bool(trade.regime_macro.strip() or trade.regime_micro.strip())


def check_signals(
    trades: Sequence[Trade], *, min_share: float, window: str, min_trades: int = 20
) -> list[Finding]:
    """The data the tuner's rules read must exist: exit reasons and regime labels.

    The original's tuner read ``hazard_exit``/``scratch`` exit reasons and regime labels the live
    writer never recorded, so it froze or walked a degenerate path for months (5.1).
    """
    source = f"ledger trades closed in the last {window}"
    if len(trades) < min_trades:
        return [
            Finding(
                check="signals",
                severity=Severity.INFO,
                what=f"only {len(trades)} trades in the last {window}: too few to judge the "
                "tuner's input signals",
                source=source,
            )
        ]
    findings = []
    reasons = Counter(t.exit_reason or "<empty>" for t in trades)
    top = ", ".join(f"{r}: {n}" for r, n in reasons.most_common(5))
    checks: tuple[tuple[str, Callable[[Trade], bool], str, str], ...] = (
        (
            "exit_reason",
            _has_exit_reason,
            f"the bot's own exit reason (hazard_exit, scratch, tp_hit...); seen: {top}",
            "record exit_reason in the bot's trade writer; without it the exit rules freeze "
            "with signal_missing",
        ),
        (
            "regime_labels",
            _has_regime,
            "regime labels at entry (regime_macro / regime_micro)",
            "record the regime at entry; regime-specific rules (quiet_low_vol) freeze without it",
        ),
    )
    for name, has, meaning, fix in checks:
        share = sum(1 for t in trades if has(t)) / len(trades)
        ok = share >= min_share
        findings.append(
            Finding(
                check=f"signal_{name}",
                severity=Severity.OK if ok else Severity.WARNING,
                what=f"{share:.0%} of {len(trades)} recent trades carry {meaning} "
                f"(needed >= {min_share:.0%})",
                fix="" if ok else fix,
                source=source,
            )
        )
    return findings
