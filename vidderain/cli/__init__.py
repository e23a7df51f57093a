"""The ``vidderain`` command line: ``info``, ``run``, ``export`` and ``preview``, one module each.

Every user error (a missing path, a bad config, weights for another model) ends as one line on stderr and
exit code 2; an interrupted run exits 130. Tracebacks are kept for real bugs. A new command is one module
here with ``add_parser(commands)`` (its options and ``handler``) plus its line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from vidderain import STARTUP_STOP, __version__
from vidderain.cli import export, info, preview, run
from vidderain.cli.options import OneLineParser
from vidderain.errors import EXIT_INTERRUPTED, Interrupted, VidderainError
from vidderain.interrupt import StopRequest, python_handlers, signals_request_stop, work_abandoned

COMMANDS = (info, run, export, preview)  # in the order --help lists them
# The long commands poll a stop request that SIGINT and SIGTERM set (vidderain.interrupt).
POLLING = (run.command_run, preview.command_preview)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vidderain", description="Real-time video deraining with RRANet.")
    parser.add_argument("--version", action="version", version=f"vidderain {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    startup = STARTUP_STOP  # listening since the package's first line when this process is the CLI, else None
    args = build_parser().parse_args(argv)
    # The long commands poll a stop request that SIGINT and SIGTERM set, so a Ctrl-C cannot be lost where
    # Python would raise it (vidderain.interrupt); the short ones keep Python's KeyboardInterrupt.
    polls = args.handler in POLLING
    if startup is not None and not polls:
        python_handlers()
    if startup is not None and startup.is_set():  # a signal while Python was still starting up
        print("vidderain: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    with signals_request_stop(startup) if polls else contextlib.nullcontext(StopRequest()) as stop:
        args.stop = stop
        try:
            return args.handler(args)
        except Interrupted as error:  # the user's doing, not an error: say what was (not) kept
            print(f"vidderain: {error}", file=sys.stderr)
            if work_abandoned():
                sys.stderr.flush()
                os._exit(error.exit_code)
            return error.exit_code
        except VidderainError as error:
            print(f"vidderain: error: {error}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt:
            print("vidderain: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
