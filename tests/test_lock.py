"""The one-writer lock on a store that ignores If-None-Match: two runs starting at the same instant
both create the lock file, and exactly one goes on (a real lock file on disk; the store's
unconditional create is simulated by overwriting)."""

from __future__ import annotations

import threading

import pytest

from birdgen_ray.io.layout import LOCK_FILE
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.lock import OutputLock, OutputLocked


class IgnoresIfNoneMatch(Output):
    """A store whose 'create if absent' overwrites, and where both runs look before either creates."""

    def __init__(self, uri: str, both_looked: threading.Barrier):
        super().__init__(uri)
        self.both_looked = both_looked

    def exists(self, rel: str) -> bool:
        found = super().exists(rel)
        if rel == LOCK_FILE:
            self.both_looked.wait(10)  # the race: neither run sees the other's lock yet
        return found

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        self.write_bytes(rel, data)
        return True


def race(out: str, settle_s: float) -> tuple[list[OutputLock], list[OutputLocked]]:
    both_looked = threading.Barrier(2)
    locks = [OutputLock(IgnoresIfNoneMatch(out, both_looked), settle_s=settle_s) for _ in range(2)]
    taken, refused = [], []

    def take(lock: OutputLock) -> None:
        try:
            lock.acquire()
            taken.append(lock)
        except OutputLocked as err:
            refused.append(err)

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return taken, refused


def test_of_two_runs_creating_the_lock_at_once_only_the_last_writer_goes_on(tmp_path):
    taken, refused = race(str(tmp_path / "out"), settle_s=0.5)
    assert len(taken) == 1 and len(refused) == 1
    assert "took the lock at the same moment" in str(refused[0])
    assert taken[0].run_id in (tmp_path / "out" / LOCK_FILE).read_text()
    taken[0].release()
    assert not (tmp_path / "out" / LOCK_FILE).exists()


def test_the_read_back_is_what_refuses_the_second_run(tmp_path, monkeypatch):
    """Without the check after creating, both runs would write the output."""
    monkeypatch.setattr(OutputLock, "_confirm", lambda self: None)
    taken, refused = race(str(tmp_path / "out"), settle_s=0.5)
    assert len(taken) == 2 and not refused


@pytest.mark.parametrize("uri, expected", [("local", 0.0), ("memory://birdgen-lock-test/out", 1.0)])
def test_only_object_storage_waits_before_reading_the_lock_back(tmp_path, uri, expected):
    output = Output(str(tmp_path / "out") if uri == "local" else uri)
    assert OutputLock(output).settle_s == expected
