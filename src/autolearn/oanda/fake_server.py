"""Moved to ``autolearn.testing.oanda_v20`` (a test helper, not part of the OANDA runtime).

Kept because earlier docs named this path (``python -m autolearn.oanda.fake_server`` in the
runbook's reconcile drill, ``FakeV20Server`` in the example bot's README): importing it warns and
re-exports the same objects; running it runs the same program.
"""

from __future__ import annotations

import sys
import warnings

from autolearn.testing.oanda_v20 import (
    FakeV20Server,
    Fault,
    FaultKind,
    RecordedRequest,
    derive_trades,
    main,
    v20_candle,
)

__all__ = [
    "FakeV20Server",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "derive_trades",
    "main",
    "v20_candle",
]

warnings.warn(
    "autolearn.oanda.fake_server moved to autolearn.testing.oanda_v20; import it from there",
    DeprecationWarning,
    stacklevel=2,
)

if __name__ == "__main__":
    sys.exit(main())
