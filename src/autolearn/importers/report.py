"""What an import produced: accepted trades, every rejected row with its reason, and counts.

Shared by every importer (QuantRabbit, OANDA, ...). An importer feeds a :class:`ReportBuilder`
one verdict per input row (``accept`` or ``reject``) and ends with ``build(rows_read=n)``; the
resulting :class:`ImportReport` checks ``rows_read == accepted_count + len(rejected)`` against the
importer's own row count, so no row can be dropped silently. A streaming importer hands accepted
trades on in chunks (``take_accepted``) instead of keeping them; the report still counts them.

Pure values: no I/O, no clock. This module must not parse any input format.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from autolearn.core.model import Trade

__all__ = ["ImportReport", "RejectedRow", "ReportBuilder"]

# Detail lines shown by ``ImportReport.format`` before it summarises the rest.
_DEFAULT_DETAIL_LIMIT = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRow:
    """One input row that did not become a trade, and why.

    ``row`` locates the row in its ``source``: the line number for text files (header = line 1),
    the ``rowid`` for SQLite tables, the index for in-memory sequences. ``column`` is the first
    offending column ("" when the problem is not one column's, e.g. a duplicate key) and
    ``value`` its raw text.
    """

    source: str
    row: int
    column: str
    value: str
    reason: str

    def describe(self) -> str:
        """One line for people: where (file, row, column), the value, and why."""
        where = f"{self.source} row {self.row}"
        if self.column:
            where += f" column {self.column!r}"
        return f"{where}: {self.reason} (value {self.value!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    """The outcome of importing one source.

    ``accepted`` keeps the input order. ``format_name`` names the detected input format
    (e.g. ``quantrabbit-sqlite-v2``) so a report says what was understood, not just how much.
    ``streamed`` counts accepted trades already handed to the caller in chunks while the
    import ran (not kept here, so a large import stays small in memory).
    """

    source: str
    format_name: str
    rows_read: int
    accepted: tuple[Trade, ...] = ()
    rejected: tuple[RejectedRow, ...] = ()
    notes: tuple[str, ...] = ()
    streamed: int = 0

    def __post_init__(self) -> None:
        # The invariant that makes "never silently dropped" checkable by every caller.
        if self.streamed < 0 or self.rows_read != self.accepted_count + len(self.rejected):
            raise ValueError(
                f"import report for {self.source}: rows_read {self.rows_read} != "
                f"accepted {self.accepted_count} + rejected {len(self.rejected)}"
            )

    @property
    def accepted_count(self) -> int:
        return len(self.accepted) + self.streamed

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    def rejected_by_column(self) -> dict[str, int]:
        """How many rows were rejected on each column ("" = a row-level problem)."""
        return dict(Counter(r.column for r in self.rejected).most_common())

    def format(self, *, detail_limit: int = _DEFAULT_DETAIL_LIMIT) -> str:
        """A short human report: counts, rejections per column, the first rejected rows."""
        lines = [
            f"{self.source} ({self.format_name}): {self.rows_read} rows read, "
            f"{self.accepted_count} accepted, {self.rejected_count} rejected"
        ]
        lines.extend(f"  note: {note}" for note in self.notes)
        if self.rejected:
            lines.append("  rejected per column:")
            for column, count in self.rejected_by_column().items():
                lines.append(f"    {column or '(row)'}: {count}")
            lines.extend(f"  - {r.describe()}" for r in self.rejected[:detail_limit])
            hidden = self.rejected_count - detail_limit
            if hidden > 0:
                lines.append(f"  ... and {hidden} more rejected rows")
        return "\n".join(lines)


@dataclass(slots=True)
class ReportBuilder:
    """Mutable collector an importer fills row by row, then freezes with :meth:`build`."""

    source: str
    format_name: str
    _accepted: list[Trade] = field(default_factory=list)
    _rejected: list[RejectedRow] = field(default_factory=list)
    _notes: list[str] = field(default_factory=list)
    _streamed: int = 0

    def accept(self, trade: Trade) -> None:
        self._accepted.append(trade)

    @property
    def pending(self) -> int:
        """Accepted trades held since the last :meth:`take_accepted`."""
        return len(self._accepted)

    def take_accepted(self) -> list[Trade]:
        """Hand over the accepted trades held so far (in input order); the report counts them."""
        taken, self._accepted = self._accepted, []
        self._streamed += len(taken)
        return taken

    def reject(self, *, row: int, column: str, value: object, reason: str) -> None:
        text = "" if value is None else str(value)
        self._rejected.append(
            RejectedRow(source=self.source, row=row, column=column, value=text, reason=reason)
        )

    def note(self, message: str) -> None:
        """Record a file-level remark (an assumption made, a column ignored)."""
        self._notes.append(message)

    def build(self, *, rows_read: int) -> ImportReport:
        """Freeze the report. ``rows_read`` is the importer's own count of rows it iterated.

        Raises:
            ValueError: some row got no verdict (or two): an importer bug, never an input error.
        """
        return ImportReport(
            source=self.source,
            format_name=self.format_name,
            rows_read=rows_read,
            accepted=tuple(self._accepted),
            rejected=tuple(self._rejected),
            notes=tuple(self._notes),
            streamed=self._streamed,
        )
