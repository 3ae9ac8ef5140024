"""Files only the app's own user may read: the data directory ``0700``, its files ``0600``.

The session store holds tokens and the outbox holds answers until they are delivered, so neither
may be readable by other local users, whatever the umask of the process that created them. A
file is created with its final mode in the ``open`` call (never briefly wider), and a mode that
is already wrong (a file from an older version, a copy, a restore) is corrected at start-up.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
#: The files SQLite keeps beside a database (WAL mode, and the rollback journal).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) ``0700``, or correct its mode when it exists."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    # mkdir's mode passes through the umask, and an existing directory keeps its old mode.
    os.chmod(directory, DIR_MODE)
    return directory


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty ``0600`` unless it exists; either way leave it ``0600``."""
    file = Path(path)
    if not file.parent.exists():
        file.parent.mkdir(parents=True, mode=DIR_MODE)
    try:
        fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        # Never open an existing file here: closing any descriptor of a SQLite database
        # drops every POSIX lock this process holds on it, including its connections' locks.
        pass
    else:
        os.close(fd)
    os.chmod(file, FILE_MODE)  # the umask may have taken bits off, or the file was wider
    return file


def private_sqlite(path: str | os.PathLike[str]) -> Path:
    """Make a SQLite database and the companions present beside it ``0600`` (the database
    created empty when missing). SQLite creates later companions with the database's mode."""
    database = private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = database.with_name(database.name + suffix)
        if companion.is_file() and not companion.is_symlink():
            os.chmod(companion, FILE_MODE)
    return database


def write_private(path: str | os.PathLike[str], text: str) -> Path:
    """Create ``path`` ``0600`` holding ``text``; refuses to replace an existing file."""
    file = Path(path)
    fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(text)
    return file


def secure_data_dir(path: str | os.PathLike[str]) -> Path:
    """The data directory ``0700`` and every regular file directly in it ``0600``."""
    directory = private_dir(path)
    for entry in directory.iterdir():
        # lstat: a symlink is left alone (chmod would follow it out of the directory).
        if stat.S_ISREG(entry.lstat().st_mode):
            os.chmod(entry, FILE_MODE)
    return directory
