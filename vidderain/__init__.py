"""vidderain: real-time video deraining with RRANet."""

__version__ = "0.1.0"
