"""``agents.jobs.file_lock``: one holder at a time, with ``fcntl`` and with Windows' ``msvcrt``."""

from __future__ import annotations

import os
import threading

import pytest

import agents.jobs as jobs


def _contend(path, events):
    """Two threads take the lock; the second must wait for the first to leave the block."""
    inside = threading.Event()
    release = threading.Event()
    waited = threading.Event()

    def first():
        with jobs.file_lock(path):
            events.append("first in")
            inside.set()
            assert release.wait(30)
            events.append("first out")

    def second():
        with jobs.file_lock(path, on_wait=lambda: (events.append("second waits"), waited.set())):
            events.append("second in")

    a = threading.Thread(target=first, daemon=True)
    a.start()
    assert inside.wait(30)
    b = threading.Thread(target=second, daemon=True)
    b.start()
    assert waited.wait(30)
    release.set()
    a.join(30)
    b.join(30)
    assert not a.is_alive() and not b.is_alive()


@pytest.mark.skipif(jobs.fcntl is None, reason="fcntl is POSIX only")
def test_a_second_holder_waits_for_the_first_with_flock(tmp_path):
    events: list[str] = []
    _contend(tmp_path / "sub" / "x.lock", events)
    assert events == ["first in", "second waits", "first out", "second in"]


class FakeMsvcrt:
    """``msvcrt.locking`` semantics: byte ranges from the file position, per open handle."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self):
        self.held: dict[int, int] = {}  # inode -> fd holding byte 0
        self.guard = threading.Lock()
        self.calls: list[tuple[int, int]] = []

    def locking(self, fd, mode, nbytes):
        assert nbytes == 1
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0, "locks must start at the first byte"
        inode = os.fstat(fd).st_ino
        with self.guard:
            self.calls.append((fd, mode))
            owner = self.held.get(inode)
            if mode == self.LK_NBLCK:
                if owner is not None:
                    raise PermissionError(13, "Permission denied")
                self.held[inode] = fd
            elif mode == self.LK_UNLCK:
                if owner != fd:
                    raise PermissionError(13, "Permission denied")
                del self.held[inode]
            else:  # pragma: no cover - file_lock uses no other mode
                raise AssertionError(mode)


def test_a_second_holder_waits_for_the_first_with_msvcrt(tmp_path, monkeypatch):
    fake = FakeMsvcrt()
    monkeypatch.setattr(jobs, "fcntl", None)
    monkeypatch.setattr(jobs, "msvcrt", fake)
    monkeypatch.setattr(jobs, "LOCK_POLL_SECONDS", 0.01)
    events: list[str] = []
    path = tmp_path / "x.lock"
    path.write_text("some content: the lock is on byte 0 whatever the file holds\n")
    _contend(path, events)
    # on_wait once, however often the second one polled
    assert events == ["first in", "second waits", "first out", "second in"]
    assert fake.held == {}  # both unlocked
    assert sum(mode == fake.LK_UNLCK for _, mode in fake.calls) == 2
    # an exception in the block still unlocks
    with pytest.raises(RuntimeError), jobs.file_lock(path):
        raise RuntimeError("boom")
    assert fake.held == {}


def test_without_any_lock_the_block_still_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "fcntl", None)
    monkeypatch.setattr(jobs, "msvcrt", None)
    ran = []
    with jobs.file_lock(tmp_path / "x.lock"), jobs.file_lock(tmp_path / "x.lock"):
        ran.append(True)
    assert ran == [True]
