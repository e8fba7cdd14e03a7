"""One module per schema version: revision ``vN`` with ``down_revision`` ``v(N-1)``."""
