"""Teams of threads that step chunks of a batch in compiled code (``envs.core.team``)."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numba
import numpy as np
import pytest

from envs.core import team


@numba.njit(nogil=True)
def _add(
    out: np.ndarray,
    step: np.ndarray,
    bounds: np.ndarray,
    ctrl: np.ndarray,
    lead: bool,
    seen: int,
    job: int,
    budget: int,
) -> int:  # pragma: no cover - compiled
    """A serve function: adds ``step[0]`` to each replica's row."""
    n = bounds.shape[0] - 1
    served = seen
    g = team.decision(ctrl, lead, -1 if lead else seen, n, job, budget)
    while g >= 0:
        served = g
        i = team.claim(ctrl, g, n)
        while i >= 0:
            for b in range(bounds[i], bounds[i + 1]):
                out[b] += step[0]
            team.finish(ctrl)
            i = team.claim(ctrl, g, n)
        g = team.decision(ctrl, lead, g, n, job, budget)
    return served


def _parked(t: team.Team, helpers: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if t._parked == helpers:
            return True
        time.sleep(0.001)
    return False


def test_chunk_bounds_cover_the_batch_in_shrinking_chunks() -> None:
    for size, threads in [(1, 2), (5, 3), (256, 2), (1000, 4), (7, 8)]:
        b = team.chunk_bounds(size, threads)
        assert b[0] == 0 and b[-1] == size
        sizes = np.diff(b)
        assert (sizes > 0).all()
        assert (np.diff(sizes) <= 0).all()  # never growing
        assert (sizes[:-1] >= 2).all()  # only the last may be below the smallest chunk
    assert team.chunk_bounds(256, 2)[1] == 64  # a quarter first: the rest over twice the threads


@pytest.mark.parametrize("threads", [2, 3])
def test_every_replica_is_stepped_once_per_decision_by_whichever_thread(threads: int) -> None:
    """Many decisions, each adding its own step: no chunk is lost or stepped twice."""
    t = team.Team(threads - 1, _add)
    out = np.zeros(301, dtype=np.int64)
    step = np.zeros(1, dtype=np.int64)
    bounds = team.chunk_bounds(out.size, threads, smallest=1)
    total = 0
    for k in range(1, 2001):
        step[0] = k
        t.run((out, step, bounds))
        total += k
        assert out.min() == out.max() == total, k


def test_helpers_park_and_wake_and_a_new_job_gets_its_arrays() -> None:
    t = team.Team(1, _add)
    t.budget = 0  # park right after every decision
    step = np.ones(1, dtype=np.int64)
    a, b = np.zeros(64, dtype=np.int64), np.zeros(64, dtype=np.int64)
    bounds = team.chunk_bounds(64, 2, smallest=1)
    for k in range(200):
        t.run((a if k % 2 else b, step, bounds))  # another job every decision
        if k % 50 == 0:
            assert _parked(t, 1)
    assert a.min() == a.max() == 100
    assert b.min() == b.max() == 100
    # a parked helper holds no arrays: dropping them frees them
    assert _parked(t, 1)
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None


def test_two_callers_take_turns() -> None:
    t = team.Team(1, _add)
    bounds = team.chunk_bounds(50, 2)
    outs = [np.zeros(50, dtype=np.int64) for _ in range(2)]
    step = np.ones(1, dtype=np.int64)

    def caller(out: np.ndarray) -> None:
        for _ in range(300):
            t.run((out, step, bounds))

    threads = [threading.Thread(target=caller, args=(out,)) for out in outs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for out in outs:
        assert out.min() == out.max() == 300


def test_no_spinning_without_a_core_per_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(team, "_cores", lambda: 1)
    t = team.Team(1, _add)
    assert t.budget == 0
    out = np.zeros(10, dtype=np.int64)
    t.run((out, np.ones(1, dtype=np.int64), team.chunk_bounds(10, 2)))
    assert (out == 1).all()


def test_the_cycle_counter_counts() -> None:
    assert team._cycles_per_second() > 1e6


@numba.njit
def _through_addresses(stage: np.ndarray, n: int) -> float:
    """Sum the float64 array at ``stage[0]`` into the one at ``stage[1]``, through a borrowed view."""
    src = numba.carray(team.pointer(stage[0]), n, np.float64)
    dst = team.borrowed(numba.carray(team.pointer(stage[1]), n, np.float64))
    total = 0.0
    for i in range(n):
        dst[i] += src[i]
        total += dst[i]
    return total


@numba.njit
def _address(a: np.ndarray) -> int:
    return a.ctypes.data


def test_arrays_reached_by_address_and_borrowed_views_are_the_arrays() -> None:
    """``pointer`` + ``numba.carray`` read an array by its address; ``borrowed`` writes through."""
    src, dst = np.arange(5.0), np.ones(5)
    stage = np.array([_address(src), _address(dst)], dtype=np.int64)
    assert stage[0] == src.ctypes.data
    assert _through_addresses(stage, 5) == pytest.approx(15.0)
    np.testing.assert_array_equal(dst, np.arange(5.0) + 1.0)
    np.testing.assert_array_equal(src, np.arange(5.0))


@numba.njit
def _borrowed_sum(a: np.ndarray) -> float:
    return team.borrowed(a)[1:].sum()


def test_a_borrowed_view_takes_no_reference_on_the_array() -> None:
    a = np.arange(4.0)
    ref = weakref.ref(a)
    assert _borrowed_sum(a) == 6.0
    del a
    gc.collect()
    assert ref() is None  # no reference was taken or leaked


@pytest.mark.parametrize("threads", [0, -2, 1.0, True, None])
def test_check_threads_names_the_field(threads: object) -> None:
    with pytest.raises(ValueError, match=r"threads: must be an integer >= 1"):
        team.check_threads(threads)
    assert team.check_threads(np.int64(3)) == 3
