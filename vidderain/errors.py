"""Errors a user can cause. The CLI prints these as one line and exits non-zero, never as a traceback."""


class VidderainError(Exception):
    """A problem with the user's input (a path, a config, a weights file), reported in one line."""

    exit_code = 2


def refuse_overwrite(path: object, others: int = 0) -> None:
    """ffmpeg's convention: an existing output is replaced only when the user says so."""
    more = f" (and {others} more)" if others else ""
    raise VidderainError(f"{path} exists{more}; pass -y/--overwrite to replace it")


EXIT_INTERRUPTED = 130  # the shell's code for a run ended by Ctrl-C (128 + SIGINT)


class Interrupted(VidderainError):
    """The user stopped the run (Ctrl-C or SIGTERM) before it had anything to keep."""

    exit_code = EXIT_INTERRUPTED


class ConfigError(VidderainError):
    """A model or run config that is missing, malformed or inconsistent."""


class WeightsError(VidderainError):
    """A weights file that cannot be read or does not fit the requested model."""
