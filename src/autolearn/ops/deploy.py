"""``autolearn deploy-check``: fail loudly when a deploy did not land.

The original deploy swallowed every failure (``git pull --ff-only || true``): a dirty tracked
file made the pull fail silently and the VM kept running old code while the operator believed it
deployed (original-system.md 3.11, 5.4). This check is what the deploy script runs after pulling.

Pure: the shell gathers :class:`DeployFacts` (``autolearn.ops.probes.probe_deploy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autolearn.ops.findings import Finding, Severity

__all__ = ["DeployFacts", "evaluate_deploy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployFacts:
    root: str
    expected: str  # as the operator wrote it (sha, short sha, tag)
    expected_sha: str | None  # resolved; None when the checkout does not know it
    head_sha: str | None
    dirty_tracked: Sequence[str]
    remote_ref: str  # e.g. "origin/main"
    remote_sha: str | None  # None when the remote-tracking branch does not exist
    head_on_remote: bool | None  # HEAD is an ancestor of (or equal to) remote_ref
    remote_ahead: int | None  # commits on remote_ref that HEAD does not have


def evaluate_deploy(facts: DeployFacts) -> list[Finding]:
    """Errors for a dirty checkout, a wrong HEAD or a diverged branch; OK otherwise."""
    findings: list[Finding] = []
    if facts.dirty_tracked:
        findings.append(
            Finding(
                check="dirty_tracked",
                severity=Severity.ERROR,
                what=f"tracked files modified in {facts.root}: {', '.join(facts.dirty_tracked)}",
                fix="a runtime writer is writing into the checkout: find it (`autolearn doctor`), "
                "save what matters, `git checkout -- <file>`, then deploy again",
                source="git status --porcelain --untracked-files=no",
            )
        )
    if facts.expected_sha is None:
        findings.append(
            Finding(
                check="expected_commit",
                severity=Severity.ERROR,
                what=f"commit {facts.expected!r} is unknown in {facts.root}",
                fix=f"`git fetch` (was it pushed to {facts.remote_ref}?), check the id, retry",
                source=f"git rev-parse {facts.expected}",
            )
        )
    elif facts.head_sha != facts.expected_sha:
        findings.append(
            Finding(
                check="head",
                severity=Severity.ERROR,
                what=f"HEAD is {facts.head_sha}, not the intended {facts.expected_sha}: the "
                "checkout runs other code than the one deployed",
                fix=f"`git fetch && git pull --ff-only`; if {facts.remote_ref} moved on, "
                "deploy its new head on purpose",
                source="git rev-parse HEAD",
            )
        )
    findings += _remote_findings(facts)
    if not findings:
        findings.append(
            Finding(
                check="deploy",
                severity=Severity.OK,
                what=f"HEAD == {facts.expected_sha}, clean, on {facts.remote_ref}",
                source=f"git -C {facts.root}",
            )
        )
    return findings


def _remote_findings(facts: DeployFacts) -> list[Finding]:
    if facts.remote_sha is None:
        return [
            Finding(
                check="fast_forward",
                severity=Severity.ERROR,
                what=f"{facts.remote_ref} is unknown: cannot verify the next pull fast-forwards",
                fix="`git fetch <remote> <branch>`; check --remote/--branch",
                source=f"git rev-parse {facts.remote_ref}",
            )
        ]
    if not facts.head_on_remote:
        return [
            Finding(
                check="fast_forward",
                severity=Severity.ERROR,
                what=f"HEAD has commits that {facts.remote_ref} does not: the checkout diverged "
                "and `git pull --ff-only` will fail",
                fix=f"push them upstream, or `git reset --hard {facts.remote_ref}` after saving "
                "what matters",
                source=f"git merge-base --is-ancestor HEAD {facts.remote_ref}",
            )
        ]
    if facts.remote_ahead:
        return [
            Finding(
                check="fast_forward",
                severity=Severity.INFO,
                what=f"{facts.remote_ref} is {facts.remote_ahead} commit(s) ahead of HEAD "
                "(fast-forwardable; not deployed yet)",
                source=f"git rev-list --count HEAD..{facts.remote_ref}",
            )
        ]
    return []
