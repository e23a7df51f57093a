"""Plain-text progress shared by one video (the CLI's run) and folders (batch): the time left."""

from __future__ import annotations


def time_left(remaining: float, rate: float) -> str:
    """', about M min S s left' for ``remaining`` units at ``rate`` a second; '' until a rate is known.
    Rounded to whole seconds before splitting, so it never reads '0 min 60 s'."""
    if rate <= 0:
        return ""
    minutes, seconds = divmod(round(max(remaining, 0) / rate), 60)
    return f", about {minutes} min {seconds} s left"
