"""Lower bound on a faithful traffic simulator's step: Krauss car-following and nothing else.

Times the cheapest part of a microscopic decision step in isolation: every vehicle of every
replica takes SUMO's Krauss update (safe speed, acceleration limit, dawdling with one uniform
draw, position) once per one-second sub-step. The vehicles ride ring lanes, so the traffic
keeps moving with no insertion, junction, lane change, statistics, observation or reward work;
a full simulator does all of these on top. It is compiled with ``fastmath``, so it is a generous
lower bound. The defaults match sumo-rl's single intersection under random control in
``lepton/TrafficSignal-v0`` (about 38 vehicles on its 8 lanes, two 2-lane roads in and out,
5 sub-steps per 5-s decision).

It answers how much of a per-replica-decision time budget car-following alone uses
(``krauss_only``), and car-following with the per-vehicle accounts every move keeps: time
loss, waiting times, time halted in a row and route length (``krauss_with_books``)::

    python scripts/bench_floor.py                       # B = 256, 40 vehicles, 8 lanes
    python scripts/bench_floor.py --reference-rate 735 --ratio 500

With ``--reference-rate`` (reference decisions per second) and ``--ratio``, it also prints the
budget ``1 / (ratio x rate)`` that a simulator must meet per replica-decision for that ratio
on one core. ``--ours`` adds our whole compiled core step on sumo-rl's single intersection
(random control, after 200 decisions to fill the network), once with its demand and once with
none, which splits the step into a fixed part and a part that grows with the vehicles::

    python scripts/bench_floor.py --ours --reference-rate 735 --ratio 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

# SUMO's passenger defaults (Krauss): reaction time, accel, decel, imperfection, gap, length
TAU, ACCEL, DECEL, SIGMA, MIN_GAP, LENGTH = 1.0, 2.6, 4.5, 0.5, 2.5, 5.0
HALT_SPEED = 0.1  # m/s: SUMO counts a vehicle slower than this as halting (waiting)


def _krauss_kernel(keep_books: bool) -> Callable[..., int]:
    """The compiled Krauss sub-steps, with the per-vehicle accounts or without.

    ``keep_books`` is a constant of the compiled code: the floor without the accounts carries
    no test for them.
    """

    @numba.njit(cache=True, fastmath=True)
    def decisions(
        pos: np.ndarray,
        speed: np.ndarray,
        ring: float,
        vmax: float,
        n_sub: int,
        uni: np.ndarray,
        k: int,
        books: np.ndarray,
    ) -> int:  # pragma: no cover - compiled
        n_batch, n_lanes, n_veh = pos.shape
        for b in range(n_batch):
            for _ in range(n_sub):
                for lane in range(n_lanes):
                    lead_pos = pos[b, lane, n_veh - 1] + ring
                    lead_v = speed[b, lane, n_veh - 1]
                    for j in range(n_veh):
                        gap = lead_pos - LENGTH - MIN_GAP - pos[b, lane, j]
                        if gap < 0.0:
                            gap = 0.0
                        safe = -TAU * DECEL + np.sqrt(
                            (TAU * DECEL) ** 2 + lead_v * lead_v + 2.0 * DECEL * gap
                        )
                        v = min(speed[b, lane, j] + ACCEL, safe, vmax)
                        v = max(0.0, v - SIGMA * ACCEL * uni[k])
                        k += 1
                        if k == uni.shape[0]:
                            k = 0
                        if keep_books:  # one-second sub-steps
                            desired = vmax * books[5, b, lane, j]
                            books[0, b, lane, j] += max(0.0, 1.0 - v / desired)
                            halted = v < HALT_SPEED
                            waited = 1.0 if halted else 0.0
                            books[1, b, lane, j] += waited
                            books[2, b, lane, j] += waited
                            books[3, b, lane, j] = books[3, b, lane, j] + 1.0 if halted else 0.0
                            books[4, b, lane, j] += v
                        # the follower sees this vehicle where it was at the sub-step's start
                        lead_pos = pos[b, lane, j]
                        lead_v = speed[b, lane, j]
                        pos[b, lane, j] += v
                        speed[b, lane, j] = v
                    # keep positions bounded (the ring's origin moves with the traffic)
                    if pos[b, lane, 0] > ring:
                        for j in range(n_veh):
                            pos[b, lane, j] -= ring
        return k

    return decisions


krauss_decisions = _krauss_kernel(False)
"""``krauss_decisions(pos, speed, ring, vmax, n_sub, uni, k, books)``: ``n_sub`` Krauss
sub-steps of every ring lane of every replica (``pos``: ``[B, L, n]``).

Vehicles on a lane are ordered front to back; the first one follows the last (a ring of ``ring``
metres). All vehicles move together: each follows its leader's position and speed at the
sub-step's start, as in SUMO. Returns the next index into the uniforms ``uni``. ``books`` is
not used.
"""

krauss_decisions_with_books = _krauss_kernel(True)
""":data:`krauss_decisions` that also keeps the per-vehicle accounts a simulator's move keeps
(``books``: ``[6, B, L, n]``): time loss against the vehicle's own desired speed (a division by
``vmax`` times its speed factor, ``books[5]``), waiting time, waiting time on the lane, time
halted in a row and route length."""


def cpu_seconds_per_call(
    call: Callable[[int], object], seconds: float, repeats: int
) -> list[float]:
    """CPU seconds per ``call(i)`` (``i`` counts the calls) in each of ``repeats`` runs."""
    runs = []
    for _ in range(repeats):
        calls = 0
        start = time.process_time()
        while time.process_time() - start < seconds:
            call(calls)
            calls += 1
        runs.append((time.process_time() - start) / calls)
    return runs


def measure(
    batch: int,
    vehicles: int,
    lanes: int,
    n_sub: int,
    seconds: float,
    repeats: int,
    keep_books: bool = False,
) -> dict[str, float]:
    """CPU time per replica-decision (best and median of ``repeats`` runs of ``seconds``).

    ``keep_books``: every update also keeps the per-vehicle accounts (see
    :data:`krauss_decisions_with_books`).
    """
    per_lane = max(1, round(vehicles / lanes))
    ring = 300.0
    spacing = ring / per_lane
    pos = np.empty((batch, lanes, per_lane))
    pos[:] = ring - spacing * np.arange(per_lane)
    speed = np.zeros_like(pos)
    uni = np.random.default_rng(0).random(1 << 20)
    books = np.zeros((6, *pos.shape))
    books[5] = 1.0  # speed factors
    args = (ring, 13.89, n_sub, uni)
    kernel = krauss_decisions_with_books if keep_books else krauss_decisions
    k = [kernel(pos, speed, *args, 0, books)]  # compile and warm up

    def call(_: int) -> None:
        k[0] = kernel(pos, speed, *args, k[0], books)

    runs = [t / batch for t in cpu_seconds_per_call(call, seconds, repeats)]
    updates = per_lane * lanes * n_sub
    best, median = min(runs), statistics.median(runs)
    return {
        "batch": batch,
        "vehicles": per_lane * lanes,
        "sub_steps": n_sub,
        "us_per_replica_decision_best": best * 1e6,
        "us_per_replica_decision_median": median * 1e6,
        "ns_per_vehicle_update_best": best * 1e9 / updates,
        "mean_speed": float(speed.mean()),
    }


def filled_sim(
    sim_cls: Any, batch: int, scale: float = 1.0, seed: int = 0
) -> tuple[Any, Callable[[int], object]]:
    """``sim_cls`` (a ``TrafficSim``) on sumo-rl's single intersection, filled by 200 decisions.

    The demand is sumo-rl's times ``scale``; actions are random. Returns the sim and
    ``step(i)``, which runs decision ``i`` of a cycle of 64 drawn action sets.
    """
    from envs.traffic.builders import sumo_rl_single_intersection

    sim = sim_cls(batch, sumo_rl_single_intersection(seconds=1e9, scale=scale))
    rngs = [np.random.default_rng([seed, i]) for i in range(batch)]
    sim.reset(np.ones(batch, dtype=bool), rngs, [None] * batch)
    rng = np.random.default_rng(seed)
    n_actions = int(sim.num_greens[0])
    pool = [rng.integers(0, n_actions, (batch, 1)) for _ in range(64)]

    def step(i: int) -> None:
        sim.advance(pool[i % 64])

    for i in range(200):
        step(i)
    return sim, step


def measure_ours(
    batch: int, scale: float, seconds: float, repeats: int, seed: int = 0
) -> dict[str, float]:
    """CPU time per replica-decision of ``TrafficSim.advance`` on sumo-rl's single intersection.

    The network is filled first (:func:`filled_sim`). Returns the best and median time and the
    vehicles on the network.
    """
    from envs.traffic.sim import METRICS, TrafficSim

    sim, step = filled_sim(TrafficSim, batch, scale, seed)
    runs = [t / batch for t in cpu_seconds_per_call(step, seconds, repeats)]
    on_network = float(sim.metrics[:, METRICS.index("on_network")].mean())
    return {
        "us_per_replica_decision_best": min(runs) * 1e6,
        "us_per_replica_decision_median": statistics.median(runs) * 1e6,
        "vehicles_on_network": on_network,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="replicas per call")
    parser.add_argument("--vehicles", type=int, default=40, help="vehicles per replica")
    parser.add_argument("--lanes", type=int, default=8, help="lanes per replica")
    parser.add_argument("--sub-steps", type=int, default=5, help="one-second sub-steps")
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-rate", type=float, help="reference decisions per second")
    parser.add_argument("--ratio", type=float, help="speed ratio to budget for")
    parser.add_argument(
        "--ours", action="store_true", help="also time our core step, with and without demand"
    )
    args = parser.parse_args(argv)
    for name in ("batch", "vehicles", "lanes", "sub_steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be >= 1")
    if (args.reference_rate is None) != (args.ratio is None):
        parser.error("--reference-rate and --ratio: give both (the budget needs both) or neither")
    for name in ("reference_rate", "ratio", "seconds"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')}: must be > 0, got {value}")
    from scripts import bench

    meta = bench.metadata(bench.Settings(seconds=args.seconds, repeats=args.repeats, warmup_s=0.0))
    given = sys.argv[1:] if argv is None else list(argv)
    meta["command"] = " ".join(["python scripts/bench_floor.py", *given])
    shape = (args.batch, args.vehicles, args.lanes, args.sub_steps, args.seconds, args.repeats)
    out = measure(*shape)
    books = measure(*shape, keep_books=True)
    result: dict[str, Any] = {"metadata": meta, "krauss_only": out, "krauss_with_books": books}
    if args.ours:
        result["ours"] = {
            name: measure_ours(args.batch, scale, args.seconds, args.repeats)
            for name, scale in (("sumo_rl_demand", 1.0), ("no_demand", 0.0))
        }
    if args.reference_rate is not None and args.ratio is not None:
        budget = 1e6 / (args.reference_rate * args.ratio)
        result["budget_us_per_replica_decision"] = budget
        for part in [out, books, *result.get("ours", {}).values()]:
            part["share_of_budget_best"] = part["us_per_replica_decision_best"] / budget
    meta["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
