"""Threads that step chunks of a batch in compiled code, handed each decision without the OS.

A batched core that steps its replicas on several threads hands each decision to its helper
threads and waits for them. With a thread pool, that hand-off goes through the operating
system: a helper asleep on a lock has to be woken, and the caller then waits for the slower of
the fixed shares. Between two decisions of a vector env the caller runs Python for a while, so
the helpers are asleep again by the next one.

A :class:`Team` keeps its helpers inside compiled code between decisions instead: each spins on
a generation counter (:data:`GO`) for up to :data:`SPIN_SECONDS` after its last work, then parks
on a condition variable. The caller publishes a decision by bumping the counter, and every
thread, the caller included, claims chunks of replicas from a shared counter (:data:`CLAIM`)
until none are left, so a helper that starts late takes fewer chunks instead of delaying the
step. Chunks shrink towards the end of the batch (:func:`chunk_bounds`), so the threads finish
together.

Every turn of a spin yields the core (``sched_yield``), so a spinning thread gives way to any
other thread that wants the core: with two processes stepping two threads each on two cores,
spinning on the processor's ``pause`` alone lost about a quarter of the throughput
(``scripts/bench_threads.py --processes 2``).

The compiled side is a family's own function (it calls the family's kernel on a chunk), built
from :func:`decision`, :func:`claim` and :func:`finish` (see :class:`Team`). A claim is a
compare-and-swap on a counter that holds the generation in its high bits, so a helper that saw
an older decision can never take a chunk of a newer one. The compiled side is told which
arguments to run with by a job number (:data:`JOB`): when the caller's arguments change
(another simulation, new arrays), a helper returns to Python to fetch them before it claims
anything.

Arrays that are new every decision (a step's fresh outputs) reach the helpers by address
(:data:`pointer`), and a serve function can lend its threads views that count no references
(:data:`borrowed`).

Numba caches a compiled function with its own module only: a family's serve function that
inlines these primitives is not recompiled when this file changes, so remove its module's
numba cache (``__pycache__/*.nbi`` and ``*.nbc``) after changing them.
"""

from __future__ import annotations

import numbers
import os
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.extending import intrinsic
from numba.np.arrayobj import make_array

GO, CLAIM, DONE, JOB = (8 * k for k in range(4))
"""Slots of a team's control array, a cache line apart: the decision's generation, the next
chunk to claim (``generation << 32 | chunk``), the chunks finished and the job number."""
CONTROL_SIZE = 32
_LOW = (1 << 32) - 1

SPIN_SECONDS = 5e-4
"""How long a helper spins for the next decision after its last work before it parks.

Longer than the Python a vector env runs between two decisions of a few hundred replicas. With
two processes of two threads each on two cores (``scripts/bench_threads.py --processes 2``),
a 2-ms spin ran 4 % slower than the thread pool it replaced, and 0.5 ms as fast."""


def _item_pointer(context: Any, builder: Any, aryty: Any, ary: Any, idx: Any) -> Any:
    arr = make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [idx])


def _atomic_load(typingctx: Any, ary: Any, idx: Any) -> Any:
    """``ary[idx]``, read with acquire ordering (re-read on every call, never hoisted)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _item_pointer(context, builder, sig.args[0], *args)
        return builder.load_atomic(ptr, "acquire", sig.args[0].dtype.bitwidth // 8)

    return ary.dtype(ary, idx), codegen


atomic_load: Any = intrinsic(_atomic_load)


def _atomic_store(typingctx: Any, ary: Any, idx: Any, val: Any) -> Any:
    """``ary[idx] = val`` with release ordering: writes before it are seen before it."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        a, i, v = args
        v = context.cast(builder, v, sig.args[2], sig.args[0].dtype)
        ptr = _item_pointer(context, builder, sig.args[0], a, i)
        builder.store_atomic(v, ptr, "release", sig.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(ary, idx, val), codegen


atomic_store: Any = intrinsic(_atomic_store)


def _atomic_add(typingctx: Any, ary: Any, idx: Any, val: Any) -> Any:
    """``ary[idx] += val`` as one atomic operation; returns the value before."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        a, i, v = args
        v = context.cast(builder, v, sig.args[2], sig.args[0].dtype)
        ptr = _item_pointer(context, builder, sig.args[0], a, i)
        return builder.atomic_rmw("add", ptr, v, "acq_rel")

    return ary.dtype(ary, idx, val), codegen


atomic_add: Any = intrinsic(_atomic_add)


def _atomic_cas(typingctx: Any, ary: Any, idx: Any, expected: Any, new: Any) -> Any:
    """Set ``ary[idx] = new`` if it holds ``expected``, atomically; whether it did."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        a, i, e, n = args
        dtype = sig.args[0].dtype
        e = context.cast(builder, e, sig.args[2], dtype)
        n = context.cast(builder, n, sig.args[3], dtype)
        ptr = _item_pointer(context, builder, sig.args[0], a, i)
        pair = builder.cmpxchg(ptr, e, n, "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(ary, idx, expected, new), codegen


atomic_cas: Any = intrinsic(_atomic_cas)


def _cycles(typingctx: Any) -> Any:
    """The processor's cycle (or time-stamp) counter; 0 where it has none."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


cycles: Any = intrinsic(_cycles)


_PAUSE = {"x86_64": "llvm.x86.sse2.pause", "amd64": "llvm.x86.sse2.pause"}.get(
    platform.machine().lower()
)


def _pause(typingctx: Any) -> Any:
    """A spin-wait hint to the processor (x86 ``pause``; nothing elsewhere).

    The fallback of :func:`yield_cpu` where there is no ``sched_yield``.
    """

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        if _PAUSE is not None:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), _PAUSE
            )
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


_YIELD = "sched_yield" if hasattr(os, "sched_yield") else None


def _yield_cpu(typingctx: Any) -> Any:
    """Let another runnable thread have this core (``sched_yield``; a ``pause`` elsewhere)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        if _YIELD is None:
            return _pause(typingctx)[1](context, builder, sig, args)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), _YIELD
        )
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


yield_cpu: Any = intrinsic(_yield_cpu)


def _pointer(typingctx: Any, address: Any) -> Any:
    """The integer ``address`` as a pointer, for ``numba.carray(pointer(a), shape, dtype)``.

    For arrays that are new every decision (fresh outputs): the caller writes their addresses
    (``array.ctypes.data``, which compiled code reads as well) into an array the helpers hold,
    so the helpers' arguments stay the same arrays and they need not return to Python to fetch
    new ones. The caller holds the arrays until the decision is done.
    """

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(types.int64), codegen


pointer: Any = intrinsic(_pointer)


def _borrowed(typingctx: Any, ary: Any) -> Any:
    """``ary`` as an array that counts no references: the same data, shape and strides.

    Every view numba makes of an array, and every call that passes one, takes and drops a
    reference on the array's memory. Threads that step chunks of one batch at once do so on
    the same counters, which then bounce between the cores: a serve function lends its
    threads borrowed arrays instead (3 % of a two-thread ``lepton/RecSimIE-v0`` step at
    B = 256, measured with the team's shrinking chunks). The caller holds the arrays until the
    decision is done.
    """
    if not isinstance(ary, types.Array):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        src = make_array(sig.args[0])(context, builder, args[0])
        dst = make_array(sig.return_type)(context, builder)
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        dst.nitems = src.nitems
        dst.itemsize = src.itemsize
        dst.data = src.data
        dst.shape = src.shape
        dst.strides = src.strides
        return dst._getvalue()

    return ary(ary), codegen


borrowed: Any = intrinsic(_borrowed)


@numba.njit(cache=True)
def publish(ctrl: np.ndarray, job: int) -> int:  # pragma: no cover - compiled
    """Open the next decision for ``job``; returns its generation."""
    g = atomic_load(ctrl, GO) + 1
    atomic_store(ctrl, DONE, 0)
    atomic_store(ctrl, CLAIM, g << 32)
    atomic_store(ctrl, JOB, job)
    atomic_store(ctrl, GO, g)
    return g


@numba.njit(cache=True, inline="always")
def claim(ctrl: np.ndarray, g: int, n: int) -> int:  # pragma: no cover - compiled
    """The next unclaimed chunk of generation ``g`` (of ``n``), or -1 when none is left."""
    while True:
        c = atomic_load(ctrl, CLAIM)
        i = c & _LOW
        if (c >> 32) != g or i >= n:
            return -1
        if atomic_cas(ctrl, CLAIM, c, c + 1):
            return i


@numba.njit(cache=True, inline="always")
def finish(ctrl: np.ndarray) -> None:  # pragma: no cover - compiled
    """Count a claimed chunk as done."""
    atomic_add(ctrl, DONE, 1)


@numba.njit(cache=True, inline="always")
def decision(
    ctrl: np.ndarray, lead: bool, last: int, n: int, job: int, budget: int
) -> int:  # pragma: no cover - compiled
    """The generation to serve after generation ``last``, or -1 to return.

    The caller (``lead``): the current generation first (``last`` -1), then, once its claims
    ran out, -1 when all ``n`` chunks are done. A helper: spin for a generation other than
    ``last``; -1 if it is another job's or after ``budget`` cycles without one.
    """
    if lead:
        if last < 0:
            return atomic_load(ctrl, GO)
        while atomic_load(ctrl, DONE) < n:
            yield_cpu()
        return -1
    since = cycles()
    while True:
        g = atomic_load(ctrl, GO)
        if g != last:
            return g if atomic_load(ctrl, JOB) == job else -1
        if cycles() - since >= budget:
            return -1
        yield_cpu()


def check_threads(threads: Any) -> int:
    """``threads`` as an int, or a ``ValueError`` naming the field unless it is an integer >= 1."""
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads: must be an integer >= 1, got {threads!r}")
    return int(threads)


def chunk_bounds(batch_size: int, threads: int, smallest: int = 2) -> np.ndarray:
    """Chunk boundaries over ``batch_size`` replicas, shrinking towards the end (guided).

    Each chunk is the remainder split over twice the threads, at least ``smallest`` replicas,
    so the first claims are large (few calls) and the last small (threads finish together).
    """
    bounds = [0]
    while bounds[-1] < batch_size:
        rest = batch_size - bounds[-1]
        bounds.append(bounds[-1] + min(rest, max(smallest, -(-rest // (2 * threads)))))
    return np.array(bounds, dtype=np.int64)


@numba.njit(cache=True)
def _count_cycles() -> int:  # pragma: no cover - compiled
    return cycles()


def _cycles_per_second() -> float:
    """The cycle counter's rate, timed over 2 ms (0 where the counter does not count)."""
    c0, t0 = _count_cycles(), time.perf_counter()
    while time.perf_counter() - t0 < 2e-3:
        pass
    return (_count_cycles() - c0) / (time.perf_counter() - t0)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class Team:
    """A caller and ``helpers`` threads stepping chunks of one decision together.

    ``serve(*args, ctrl, lead, seen, job, budget) -> int`` is the family's compiled function,
    without the GIL (``nogil=True``), of this shape::

        n = bounds.shape[0] - 1
        served = seen
        g = decision(ctrl, lead, -1 if lead else seen, n, job, budget)
        while g >= 0:
            served = g
            # (set up what every chunk needs once, then)
            i = claim(ctrl, g, n)
            while i >= 0:
                ...  # step replicas bounds[i] .. bounds[i + 1] - 1
                finish(ctrl)
                i = claim(ctrl, g, n)
            g = decision(ctrl, lead, g, n, job, budget)
        return served

    The caller (``lead``, after :meth:`run` published the decision) steps chunks until none
    is left and waits for the helpers' ones. A helper serves every new decision of job ``job``
    and returns the last generation it served when another job is published (to fetch its
    arguments) or after ``budget`` cycles without work (to park). Helpers spin only where the
    process has a core for each thread; otherwise they park at once (``budget`` 0).
    """

    def __init__(self, helpers: int, serve: Callable[..., int]) -> None:
        self.serve = serve
        self.ctrl = np.zeros(CONTROL_SIZE, dtype=np.int64)
        self._cond = threading.Condition()
        self._job: tuple[int, tuple] = (0, ())
        self._parked = 0
        rate = _cycles_per_second() if _cores() > helpers else 0.0
        self.budget = int(rate * SPIN_SECONDS)
        self._lock = threading.Lock()  # one decision at a time
        for k in range(helpers):
            threading.Thread(target=self._help, name=f"lepton-team-{k}", daemon=True).start()

    def run(self, args: tuple) -> None:
        """Step one decision with ``args`` (the arguments ``serve`` passes to the kernel)."""
        with self._lock:
            with self._cond:
                job, current = self._job
                if not _same(args, current):
                    job += 1
                    self._job = (job, args)
                publish(self.ctrl, job)
                if self._parked:
                    self._cond.notify_all()
            self.serve(*args, self.ctrl, True, 0, job, 0)

    def _help(self) -> None:
        seen = 0
        while True:
            with self._cond:
                job, args = self._job
                while self.ctrl[GO] == seen or not args:
                    # nothing new (or a decision whose arrays were released: the caller steps
                    # it): park holding no arrays, so a simulation dropped meanwhile is freed and
                    # the next decision is a new job that every helper fetches
                    seen = int(self.ctrl[GO])
                    args = ()
                    self._job = (self._job[0], ())
                    self._parked += 1
                    self._cond.wait()
                    self._parked -= 1
                    job, args = self._job
            seen = self.serve(*args, self.ctrl, False, seen, job, self.budget)


def _same(a: tuple, b: tuple) -> bool:
    """Whether two argument lists hold the same objects (tuples in them compared alike).

    Identity, not equality: the helpers run with the arrays themselves. Equal numbers that are
    other objects only make a new job, which is always safe.
    """
    return len(a) == len(b) and all(
        x is y or (type(x) is tuple and type(y) is tuple and _same(x, y))
        for x, y in zip(a, b, strict=True)
    )


_TEAMS: dict[tuple[int, int, Callable[..., int]], Team] = {}
_TEAMS_LOCK = threading.Lock()


def _after_fork() -> None:
    global _TEAMS_LOCK
    _TEAMS_LOCK = threading.Lock()  # a thread of the parent may have held it


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)


def team(threads: int, serve: Callable[..., int]) -> Team:
    """The process's team of ``threads`` (the caller and ``threads - 1`` helpers) for ``serve``.

    Teams are kept per process id: a forked child has none of its parent's threads.
    """
    key = (os.getpid(), threads, serve)
    with _TEAMS_LOCK:
        found = _TEAMS.get(key)
        if found is None:
            found = _TEAMS[key] = Team(threads - 1, serve)
    return found
