"""The HTML report of a replay (``autolearn report RUN``). Importing this package starts nothing
and does not import plotly (the builder imports it when called)."""

from __future__ import annotations

from autolearn.report.html import RunData, build_report, find_runs, load_run

__all__ = ["RunData", "build_report", "find_runs", "load_run"]
