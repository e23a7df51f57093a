"""Outputs written whole or not at all, and never over a file that is not the run's own.

Every file vidderain writes (videos, images, weights, exported graphs, manifests, checkpoints, recordings)
goes to a hidden temporary name beside its target, ``.STEM.vidderain-tmp-PID-N.SUFFIX``, and is renamed
into place only once it is complete (:func:`atomic_output`). Without ``overwrite`` the rename itself
refuses a target that appeared meanwhile (a hard link fails on an existing name: the check holds at the
moment of the rename, so two runs to one output cannot both claim it). A run killed with SIGKILL leaves its
temporary file behind; the next run to that target removes those whose process is gone.
"""

from __future__ import annotations

import errno
import glob
import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidderain.errors import VidderainError

TEMP_TAG = "vidderain-tmp"
NAME_MAX_BYTES = 255  # the longest file name ext4, XFS, btrfs, APFS and NTFS accept
# Errors of a filesystem that has no hard links (FAT, some network and FUSE mounts): there the no-replace
# rename falls back to a check just before an ordinary rename.
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
FREE_NAME_TRIES = 1000
_counter = itertools.count(1)  # two outputs of one process to one target get two temporary names


class OutputTaken(VidderainError):
    """The output appeared while this run worked (another run?): this run's result is kept elsewhere."""

    exit_code = 1


def _shorten(text: str, most_bytes: int) -> str:
    return text.encode()[: max(most_bytes, 0)].decode(errors="ignore")


def _temp_prefix(target: Path) -> str:
    """The hidden temporary names' common start for ``target``, shortened so that the whole name fits."""
    longest_tail = f".{TEMP_TAG}-{'9' * 10}-{'9' * 6}{target.suffix}"
    stem = _shorten(target.stem, NAME_MAX_BYTES - 1 - len(longest_tail.encode()))
    return f".{stem}.{TEMP_TAG}-"


def temporary_path(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (same suffix: writers pick their format by it)."""
    return target.with_name(f"{_temp_prefix(target)}{os.getpid()}-{next(_counter)}{target.suffix}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_temporaries(target: Path) -> list[Path]:
    """Temporary files of ``target`` left by runs whose process is gone (killed)."""
    if not target.parent.is_dir():
        return []
    prefix = _temp_prefix(target)
    pattern = re.compile(re.escape(prefix) + r"(\d+)-\d+" + re.escape(target.suffix) + "$")
    stale = []
    for path in target.parent.glob(f"{glob.escape(prefix)}*{glob.escape(target.suffix)}"):
        match = pattern.match(path.name)
        owner = int(match.group(1)) if match else None
        if owner is not None and owner != os.getpid() and not _process_alive(owner):
            stale.append(path)  # a live run's, this one's included, is left alone
    return stale


def remove_stale_temporaries(target: Path) -> None:
    for path in stale_temporaries(target):
        path.unlink(missing_ok=True)


def _link_no_replace(temp: Path, target: Path) -> bool:
    """Rename ``temp`` to ``target`` unless ``target`` exists (then False, ``temp`` untouched)."""
    try:
        os.link(temp, target)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            return False
        os.replace(temp, target)
        return True
    temp.unlink()
    return True


def move_into_place(temp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished ``temp`` to ``target``; without ``overwrite`` a target that appeared meanwhile
    is kept, and this result goes to the first free name beside it (said in :class:`OutputTaken`)."""
    if overwrite:
        os.replace(temp, target)
        return
    if _link_no_replace(temp, target):
        return
    kept = keep_under_free_name(temp, target, first=2)
    raise OutputTaken(
        f"{target} appeared while this run worked (another run?): left it as it is, "
        f"kept this run's result as {kept}"
    )


def keep_under_free_name(temp: Path, wanted: Path, first: int = 1) -> Path:
    """Move ``temp`` to the first free name of WANTED (when ``first`` is 1), WANTED-2, WANTED-3, ...:
    never over a file that exists."""
    for number in range(first, first + FREE_NAME_TRIES):
        name = wanted.stem if number == 1 else f"{wanted.stem}-{number}"
        candidate = wanted.with_name(f"{name}{wanted.suffix}")
        if _link_no_replace(temp, candidate):
            return candidate
    raise VidderainError(f"no free name like {wanted} to keep the result under")


@contextmanager
def atomic_output(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``target``'s content to; on success it becomes ``target``, on any
    error (or Ctrl-C) it is removed. Killed runs' temporary files for ``target`` are removed first."""
    target = Path(target)
    remove_stale_temporaries(target)
    temp = temporary_path(target)
    try:
        yield temp
        move_into_place(temp, target, overwrite)
    finally:
        temp.unlink(missing_ok=True)
