"""Durable writes: the one recipe of every writer (episodes, embeddings, checkpoints, results).

A file is written under a temporary name in its final directory,
``.tmp-<pid>-<final name>.partial``, its bytes fsynced, renamed over the final name with
``os.replace`` (atomic on POSIX) and the directory fsynced, so the rename itself survives a power
cut. A process killed at any point leaves the old file or the new one, never half of one.

A writer killed with SIGKILL cannot remove its temporary file; the temp name carries the writer's
pid, so :func:`clean_partials` (run by every :func:`replacing` before it writes, and by
:class:`~daft_env.store.EpisodeStore` when it opens) removes the files of writers that no longer
run and keeps those of a live concurrent writer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"
TMP_SUFFIX = ".partial"


def fsync_path(path: Path) -> None:
    """Make ``path`` durable: a file's bytes, or a directory's entries (a rename or a new file).

    ``flush`` only hands data to the OS; a crash can still lose it until ``fsync`` returns.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: Path) -> Path:
    """The temporary name :func:`replacing` writes ``final`` under (this process's pid in it)."""
    return final.with_name(f"{TMP_PREFIX}{os.getpid()}-{final.name}{TMP_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def writer_pid(tmp: Path) -> int:
    """The pid in a temporary file's name (-1 when the name has none)."""
    try:
        return int(tmp.name[len(TMP_PREFIX) :].split("-", 1)[0])
    except ValueError:
        return -1


def clean_partials(directory: Path, pattern: str = "*", recursive: bool = False) -> list[Path]:
    """Delete the temp files of writers that no longer run below ``directory``; returns them.

    Args:
        directory: where to look.
        pattern: the final names whose temp files to consider (a glob, e.g. ``checkpoint.zip``).
        recursive: look in every subdirectory too.
    """
    glob = f"{TMP_PREFIX}*-{pattern}{TMP_SUFFIX}"
    found = directory.glob(f"**/{glob}") if recursive else directory.glob(glob)
    removed = []
    for tmp in found:
        pid = writer_pid(tmp)
        if pid == os.getpid() or (pid > 0 and _pid_alive(pid)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def replacing(final: str | os.PathLike[str], clean: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on leaving, make it ``final`` durably (module docstring).

    With ``clean`` the temp files that killed writers left for ``final`` are removed first (the
    episode store, whose names are new each time, cleans once when it opens instead). On an
    exception the temporary file is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        clean_partials(final.parent, final.name)
    tmp = temp_path(final)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(final.parent)


def write_with(final: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Durably write ``final`` through ``write(binary file)``; returns its path."""
    with replacing(final) as tmp, open(tmp, "wb") as fh:
        write(fh)
    return Path(final)


def write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    """Durably write ``data`` to ``final``; returns its path."""
    return write_with(final, lambda fh: fh.write(data))


def write_text(final: str | os.PathLike[str], text: str) -> Path:
    """Durably write UTF-8 ``text`` to ``final``; returns its path."""
    return write_bytes(final, text.encode("utf-8"))


__all__ = [
    "TMP_PREFIX",
    "TMP_SUFFIX",
    "clean_partials",
    "fsync_path",
    "replacing",
    "temp_path",
    "write_bytes",
    "write_text",
    "write_with",
]
