"""A real, small filesystem that a test can fill up and free again.

A tmpfs of a few MiB is mounted on a directory of the test's own, with the
``mount(2)`` system call (no subprocess); :meth:`SmallFilesystem.fill` writes
a filler file until the kernel answers ENOSPC, :meth:`SmallFilesystem.free`
deletes it.  Mounting needs root (or CAP_SYS_ADMIN): :func:`mount_or_skip`
skips the test with the kernel's reason where it is refused.

For a SQLite database on it, call :func:`truncate_wal` before filling: a
write-ahead log that was checkpointed keeps its size and is written over from
the start, so small transactions would still fit in it; truncated, every
write needs new space.
"""

import ctypes
import ctypes.util
import errno
import os

import pytest
import sqlalchemy as sa

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_MNT_DETACH = 2


class SmallFilesystem:
    def __init__(self, path, size="4m"):
        self.path = str(path)
        self.size = size
        self.mounted = False
        self.filler = os.path.join(self.path, "filler")

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        options = f"size={self.size},mode=0755".encode()
        if _LIBC.mount(b"tmpfs", self.path.encode(), b"tmpfs", 0, options) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount tmpfs on {self.path}: {os.strerror(err)}")
        self.mounted = True
        return self

    def umount(self):
        if self.mounted:
            # Detach: a pooled SQLite connection still holding a file must not keep the mount.
            _LIBC.umount2(self.path.encode(), _MNT_DETACH)
            self.mounted = False

    def fill(self):
        """Take every free block; return the bytes written."""
        written = 0
        chunk = 1 << 20
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while chunk:
                try:
                    written += os.write(fd, b"\0" * chunk)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
        finally:
            os.close(fd)
        return written

    def free(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def full(self):
        stat = os.statvfs(self.path)
        return stat.f_bavail == 0


def mount_or_skip(path, size="4m"):
    """A mounted :class:`SmallFilesystem`, or skip the test saying why it cannot be mounted here."""
    fs = SmallFilesystem(path, size)
    try:
        fs.mount()
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS, errno.ENODEV):
            pytest.skip(f"a small tmpfs cannot be mounted here (needs root or CAP_SYS_ADMIN): {err}")
        raise
    return fs


def truncate_wal(store):
    """Checkpoint a SQLite store's write-ahead log and cut it to zero bytes."""
    with store.engine.connect() as conn:
        conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
