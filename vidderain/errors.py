"""Errors a user can cause. The CLI prints these as one line and exits non-zero, never as a traceback."""


class VidderainError(Exception):
    """A problem with the user's input (a path, a config, a weights file), reported in one line."""

    exit_code = 2


class ConfigError(VidderainError):
    """A model or run config that is missing, malformed or inconsistent."""


class WeightsError(VidderainError):
    """A weights file that cannot be read or does not fit the requested model."""
