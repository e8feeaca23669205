"""The one clock the service reads time from.

Every expiry and the Auth0 interval are measured with `Clock.now()`, so tests
can move time forward instead of sleeping. A server process started by the
tests is given `IDENTITY_CLOCK_OFFSET_FILE`; production leaves it unset and
reads the wall clock directly.
"""

import datetime
import os


class Clock:
    """The wall clock, in UTC."""

    def now(self) -> datetime.datetime:
        """Return the current time as an aware UTC datetime."""
        return datetime.datetime.now(datetime.UTC)

    def timestamp(self) -> float:
        """Return the current time as seconds since the epoch."""
        return self.now().timestamp()


class ManualClock(Clock):
    """A clock that only moves when told to, for in-process tests."""

    def __init__(self, start: datetime.datetime | None = None) -> None:
        self._now = start or datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def now(self) -> datetime.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by seconds."""
        self._now += datetime.timedelta(seconds=seconds)


class OffsetFileClock(Clock):
    """The wall clock plus a number of seconds read from a file.

    The file is re-read only when its inode, modification time or size
    changes, so a call costs one stat. Writers replace the file whole (write a
    new one, then rename it over): a file rewritten in place can be read empty
    between truncation and write. The inode tells two replacements apart even
    when they land in the same clock tick with the same size. A missing or
    empty file means no offset; a file that does not hold a number is an
    error, since a test that wrote it expects time to move.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._seen: tuple[int, int, int] | None = None
        self._offset = datetime.timedelta()

    def now(self) -> datetime.datetime:
        self._refresh()
        return datetime.datetime.now(datetime.UTC) + self._offset

    def _refresh(self) -> None:
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            self._seen, self._offset = None, datetime.timedelta()
            return

        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return

        with open(self._path, encoding="ascii") as offset_file:
            content = offset_file.read().strip()
        self._offset = datetime.timedelta(seconds=float(content or 0))
        self._seen = seen


def clock_for(offset_file: str | None) -> Clock:
    """Return the clock a server should use given IDENTITY_CLOCK_OFFSET_FILE."""
    return OffsetFileClock(offset_file) if offset_file else Clock()
