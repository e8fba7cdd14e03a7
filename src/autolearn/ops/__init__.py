"""Operations: systemd units, status, doctor, deploy check and Prometheus metrics.

The pure parts (``schedules``, ``systemd``, ``status``, ``doctor``, ``deploy``, ``prometheus``)
take values and ``now`` and return values or text; the shell parts (``install``, ``probes``) run
``git``/``systemctl`` and write files. The CLI (``autolearn.cli._ops``) only gathers inputs.
"""

__all__: list[str] = []
