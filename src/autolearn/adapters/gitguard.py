"""Refuse to write any path that git tracks.

The seed's first problem: runtime writes into tracked ``config/*.yaml`` dirtied the VM checkout
and silently broke ``git pull --ff-only`` deploys. Every runtime write asks git first; a
tracked target is a ``TrackedPathError`` naming the path and the fix. Outside a git checkout
nothing is tracked and the check passes.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from autolearn.errors import StateError, TrackedPathError

__all__ = ["ensure_state_dir_ignored", "ensure_untracked", "git_toplevel", "tracked_under"]


@lru_cache(maxsize=64)
def git_toplevel(directory: Path) -> Path | None:
    """The checkout containing ``directory`` (nearest existing ancestor), else ``None``."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(probe), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git binary: nothing can be tracked by it
    if out.returncode != 0:
        if "not a git repository" in out.stderr:
            return None
        # Any other refusal (e.g. "detected dubious ownership" when the service user does not
        # own the checkout) must not read as "nothing is tracked": fail closed.
        raise StateError(
            f"cannot ask git about {probe}: {out.stderr.strip()[:300]}; fix git's complaint "
            f"(for dubious ownership: `git config --global --add safe.directory <checkout>` "
            f"for the service user) so autolearn can check it never writes a tracked file"
        )
    return Path(out.stdout.strip()).resolve()


def tracked_under(path: Path) -> set[Path]:
    """Absolute paths git tracks at or below ``path``."""
    resolved = path.resolve()
    top = git_toplevel(resolved if resolved.is_dir() else resolved.parent)
    if top is None:
        return set()
    try:
        rel = resolved.relative_to(top)
    except ValueError:
        return set()
    try:
        out = subprocess.run(
            ["git", "-C", str(top), "ls-files", "-z", "--", str(rel) if str(rel) != "." else "."],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StateError(f"cannot ask git whether {path} is tracked: {exc}") from exc
    if out.returncode != 0:
        raise StateError(f"git ls-files failed for {path}: {out.stderr.decode(errors='replace')}")
    return {top / name for name in out.stdout.decode().split("\0") if name}


def ensure_untracked(paths: list[Path], tracked: set[Path] | None = None) -> None:
    """Raise ``TrackedPathError`` when any of ``paths`` is tracked by git."""
    if tracked is not None and not tracked:
        return  # nothing tracked there (e.g. outside any checkout): no path can be
    for path in paths:
        resolved = path.resolve()
        known = tracked if tracked is not None else tracked_under(resolved)
        if resolved in known:
            raise TrackedPathError(
                f"refusing to write {resolved}: git tracks it, and a runtime write would dirty "
                f"the checkout and break `git pull --ff-only`. Fix: keep runtime state in an "
                f"untracked, ignored directory (AUTOLEARN_STATE_DIR / --state-dir), or "
                f"`git rm --cached {resolved}` and add it to .gitignore"
            )


def ensure_state_dir_ignored(root: Path) -> None:
    """Refuse a state directory inside a git checkout unless git ignores it.

    Checked before the first write of a run (not only by ``doctor``): ``--state-dir config``,
    the checkout root, ``logs/../config`` or a symlink into a tracked directory would put
    runtime files where ``git status`` sees them. The path is resolved first, so a link or a
    ``..`` is judged by where it really points.

    Raises:
        TrackedPathError: the directory is the checkout root or inside it and not ignored.
        StateError: git could not be asked (fail closed).
    """
    resolved = root.resolve()
    top = git_toplevel(resolved)
    if top is None:
        return
    try:
        rel = resolved.relative_to(top)
    except ValueError:
        return  # outside the checkout
    fix = (
        "Fix: point AUTOLEARN_STATE_DIR / --state-dir outside the checkout, or at an ignored "
        "directory (the default logs/tuning with logs/ in .gitignore)"
    )
    if str(rel) == ".":
        raise TrackedPathError(
            f"refusing to use {resolved} as the state directory (given as {root}): it is the "
            f"root of the git checkout {top}. {fix}"
        )
    # A child of an ignored directory is ignored even before the directory exists.
    probe = resolved / ".autolearn-probe"
    try:
        out = subprocess.run(
            ["git", "-C", str(top), "check-ignore", "-q", "--", str(probe)],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StateError(f"cannot ask git whether {resolved} is ignored: {exc}") from exc
    if out.returncode == 1:
        raise TrackedPathError(
            f"refusing to use {resolved} as the state directory (given as {root}): it is "
            f"inside the git checkout {top} and not ignored, so every runtime write would "
            f"dirty the checkout. {fix}"
        )
    if out.returncode != 0:
        detail = out.stderr.decode(errors="replace").strip()[:300]
        raise StateError(f"git check-ignore failed for {resolved}: {detail}")
