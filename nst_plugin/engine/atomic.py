"""Atomic file writes: a file appears complete or not at all, never half written.

A process killed mid-write (SIGKILL, power loss) leaves only a hidden `.<name>.<pid>.*.part`
beside the file; the next write of that file removes the leftovers whose writer is no longer
running, so a re-run leaves the folder clean.

A write that fails (a full disk, a folder made read-only, no permission) raises `WriteError`
naming the file and the reason, after removing its temporary file: the file that was at the path
before is untouched, since only a finished temporary file is ever renamed over it."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WriteError

REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else remove it."""
    path = Path(path)
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(path)
        prefix = f".{path.name}.{os.getpid()}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=path.parent)
        os.close(fd)
        mask = os.umask(0)
        os.umask(mask)
        yield tmp
        # mkstemp makes 0600, and a writer may recreate the file: give it a normal file's mode
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in REASONS:
            raise
        kept = " (the existing file is unchanged)" if os.path.exists(path) else ""
        raise WriteError(f"cannot write {path}: {REASONS[exc.errno]}{kept}") from exc
    finally:
        if tmp and os.path.exists(tmp):
            with contextlib.suppress(OSError):  # a folder gone read-only keeps it; the next
                os.unlink(tmp)  # write there removes it, as a dead writer's


def _remove_stale_parts(path: Path) -> None:
    """Leftovers of writers that died: their PID (in the name) no longer runs."""
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        pid = part.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
