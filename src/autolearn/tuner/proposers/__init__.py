"""The tuner's proposer family: one plug-in per knob family, in an explicit registry.

``PROPOSERS`` maps a registry family name to its proposer. No directory scanning, no ``getattr``
lookup: adding a family means adding a module and a line here (and its knobs to the registry).
"""

from __future__ import annotations

from collections.abc import Mapping

from autolearn.tuner.proposers._base import (
    FamilyEvidence,
    KnobProposal,
    Proposer,
    Signal,
    max_steps,
)
from autolearn.tuner.proposers.alloc_share import AllocShareProposer
from autolearn.tuner.proposers.exit_lowvol import ExitLowvolProposer
from autolearn.tuner.proposers.micro_entry import MicroEntryProposer

__all__ = ["PROPOSERS", "FamilyEvidence", "KnobProposal", "Proposer", "Signal", "max_steps"]

PROPOSERS: Mapping[str, Proposer] = {
    "exit.lowvol": ExitLowvolProposer(),
    "micro.entry": MicroEntryProposer(),
    "alloc.micro_share": AllocShareProposer(),
}
