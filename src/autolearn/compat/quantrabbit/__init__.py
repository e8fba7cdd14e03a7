"""QuantRabbit drop-in: the files its workers read, and its order-path modules.

- ``exports``: after every change of the runtime layer, ``tuning_overlay.yaml``,
  ``policy_overlay.json`` and ``scalp_active_params.json`` in the original's shapes (opt-in per
  file in the bot's tracked ``config/autolearn_compat.yaml``; ``config`` and ``render`` hold the
  mapping and the pure rendering);
- ``perf_guard``, ``stage_tracker``, ``reentry_gate``: the original's call signatures, backed by
  ``autolearn.gates`` (a worker changes one import line);
- ``loader``: the original's consumers' reading rules, to verify an export from the bot's side.

Importing this package imports nothing heavy; each module is imported on its own.
"""

__all__: list[str] = []
