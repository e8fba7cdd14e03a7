"""autolearn: the safe auto-learning control plane of a live FX trading bot.

Importing the package has no side effects.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
