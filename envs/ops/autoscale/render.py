"""Pygame drawing of the autoscaled cluster (one replica's state snapshot).

One row per service (the first ``MAX_ROWS``), each with three charts over the last
``HISTORY`` steps: arrival rate against ready capacity, replicas by state (ready, starting,
failed, stacked) with the desired count, and latency at the SLO percentile against the SLO
line. A header shows the clock, the episode's cost and SLO violations and any zone outage.
Imported lazily by ``LeptonEnv.draw``; drawing never changes the simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pygame

from envs.core.render import MUTED, PygameView
from envs.ops.autoscale.scenario import AutoscaleScenario
from envs.ops.autoscale.sim import (
    A_PENALTY,
    A_REPLICA_COST,
    A_VIOLATION_MIN,
    H_CAPACITY,
    H_FAILED,
    H_LATENCY,
    H_RATE,
    H_READY,
    H_STARTING,
    HISTORY,
    AutoscaleState,
)

WIDTH, HEIGHT = 800, 450
MAX_ROWS = 3

PANEL = (255, 255, 255)
EDGE = (200, 200, 206)
LOAD = (220, 120, 40)
CAPACITY = (60, 120, 200)
READY = (70, 150, 90)
STARTING = (240, 190, 70)
FAILED = (210, 70, 60)
DESIRED = (40, 40, 48)
LATENCY = (120, 80, 180)
SLO = (210, 70, 60)


class AutoscaleRenderer(PygameView):
    """Draws one replica of the cluster for ``human`` or ``rgb_array`` rendering.

    Args:
        structure: the environment's structure scenario (services and their scales).
        render_mode: ``"human"`` (a window ticking at ``fps``) or ``"rgb_array"``.
        fps: frames per second in ``human`` mode.
    """

    def __init__(self, structure: AutoscaleScenario, render_mode: str, fps: int) -> None:
        super().__init__(
            structure, render_mode, fps, size=(WIDTH, HEIGHT), caption="Lepton Gym - autoscaling"
        )
        self.rows = min(structure.num_services, MAX_ROWS)
        self.margin = 14
        self.top = 58
        self.bottom = HEIGHT - 26
        self.label_w = 92
        self.row_h = (self.bottom - self.top) / self.rows
        self.chart_w = (WIDTH - 2 * self.margin - self.label_w - 2 * 10) / 3

    def paint(self, canvas: Any, snapshot: AutoscaleState, info: Mapping[str, Any]) -> None:
        """Draw replica 0 of ``snapshot`` (a batch axis of one)."""
        self._draw_header(canvas, snapshot)
        for k in range(self.rows):
            self._draw_service(canvas, snapshot, k)
        self._draw_legend(canvas)

    # --- parts ------------------------------------------------------------------------------
    def _draw_header(self, canvas: Any, s: AutoscaleState) -> None:
        t, horizon = int(s.t[0]), int(s.horizon[0])
        minute = float(s.minute_of_day()[0])
        clock = f"{int(minute // 60):02d}:{int(minute % 60):02d}"
        self.text(canvas, f"{clock}  step {t} / {horizon}", (self.margin, 12), font=self.big)
        totals = s.totals[0]
        cost = float(totals[:, A_REPLICA_COST].sum() + totals[:, A_PENALTY].sum())
        minutes = float(totals[:, A_VIOLATION_MIN].sum())
        elapsed = max(t * float(s.step_minutes[0]) * totals.shape[0], 1e-9)
        self.text(canvas, f"cost {cost:,.1f}", (270, 12), font=self.big)
        self.text(
            canvas,
            f"SLO violated {minutes:g} min ({100.0 * minutes / elapsed:.1f} %)",
            (420, 16),
            color=SLO if minutes > 0 else MUTED,
        )
        zone = int(s.outage_zone[0])
        if zone >= 0:
            self.text(
                canvas,
                f"zone {zone} down ({int(s.outage_left[0])} steps)",
                (WIDTH - self.margin, 16),
                color=FAILED,
                anchor="topright",
            )
        x0, y0, w = self.margin, 40, WIDTH - 2 * self.margin
        pygame.draw.rect(canvas, EDGE, (x0, y0, w, 5), border_radius=2)
        frac = 0.0 if horizon <= 0 else min(1.0, t / horizon)
        pygame.draw.rect(canvas, CAPACITY, (x0, y0, int(w * frac), 5), border_radius=2)

    def _series(self, s: AutoscaleState, k: int, channel: int) -> np.ndarray:
        """The last ``min(t, HISTORY)`` values of a history channel, oldest first."""
        hist = s.history[0, k, channel]
        width = hist.shape[0]
        t = int(s.t[0])
        n = min(t, width)
        idx = (t - n + np.arange(n)) % width
        return np.asarray(hist[idx], dtype=np.float64)

    def _panel(self, canvas: Any, x: float, y: float, w: float, h: float, title: str) -> Any:
        rect = pygame.Rect(int(x), int(y), int(w), int(h))
        pygame.draw.rect(canvas, PANEL, rect, border_radius=4)
        pygame.draw.rect(canvas, EDGE, rect, width=1, border_radius=4)
        self.text(canvas, title, (x + 6, y + 3), color=MUTED, font=self.small)
        return rect.inflate(-12, -22).move(0, 5)

    def _line(
        self,
        canvas: Any,
        area: Any,
        values: np.ndarray,
        top: float,
        color: tuple[int, int, int],
        width: int = 2,
    ) -> None:
        if values.size == 0:
            return
        n = HISTORY
        xs = area.left + area.width * (np.arange(values.size) + n - values.size) / max(n - 1, 1)
        ys = area.bottom - area.height * np.clip(values / max(top, 1e-9), 0.0, 1.0)
        points = [(float(a), float(b)) for a, b in zip(xs, ys, strict=True)]
        if len(points) == 1:
            pygame.draw.circle(canvas, color, (int(points[0][0]), int(points[0][1])), 2)
        else:
            pygame.draw.lines(canvas, color, False, points, width)

    def _draw_service(self, canvas: Any, s: AutoscaleState, k: int) -> None:
        y = self.top + k * self.row_h
        h = self.row_h - 8
        service = self.structure.services[k]
        self.text(canvas, service.name, (self.margin, y + 4))
        ready = int(s.ready[0, k])
        starting = int(s.starting[0, k].sum())
        failed = int(s.failed[0, k].sum())
        lines = [
            f"ready {ready}",
            f"starting {starting}",
            f"failed {failed}",
            f"desired {int(s.desired[0, k])}",
            f"queue {float(s.queue[0, k]):,.0f}",
        ]
        for j, line in enumerate(lines):
            self.text(canvas, line, (self.margin, y + 24 + 14 * j), color=MUTED, font=self.small)
        x = self.margin + self.label_w
        # 1. arrival rate against ready capacity
        rate = self._series(s, k, H_RATE)
        capacity = self._series(s, k, H_CAPACITY)
        full = float(s.max_replicas[0, k] * s.service_rate[0, k])
        top = max(float(rate.max(initial=0.0)), float(capacity.max(initial=0.0)), 1e-9) * 1.1
        top = min(top, 2.0 * full) if full > 0 else top
        area = self._panel(canvas, x, y, self.chart_w, h, f"load vs capacity (max {top:,.0f}/s)")
        self._line(canvas, area, capacity, top, CAPACITY)
        self._line(canvas, area, rate, top, LOAD)
        # 2. replicas by state, stacked, with the desired count
        x += self.chart_w + 10
        cap = float(s.max_replicas[0, k])
        area = self._panel(canvas, x, y, self.chart_w, h, f"replicas (cap {cap:g})")
        r = self._series(s, k, H_READY)
        st = self._series(s, k, H_STARTING)
        fl = self._series(s, k, H_FAILED)
        n = HISTORY
        bar_w = max(area.width / n, 1.0)
        for j in range(r.size):
            bx = area.left + area.width * (j + n - r.size) / n
            base = 0.0
            for value, color in ((r[j], READY), (st[j], STARTING), (fl[j], FAILED)):
                if value <= 0:
                    continue
                y0 = area.bottom - area.height * min((base + value) / cap, 1.0)
                y1 = area.bottom - area.height * min(base / cap, 1.0)
                pygame.draw.rect(
                    canvas, color, (int(bx), int(y0), int(np.ceil(bar_w)), max(int(y1 - y0), 1))
                )
                base += value
        level = area.bottom - area.height * min(float(s.desired[0, k]) / cap, 1.0)
        pygame.draw.line(canvas, DESIRED, (area.left, level), (area.right, level), 1)
        avail = float(s.available_cap[0, k])
        if avail < cap:
            level = area.bottom - area.height * avail / cap
            pygame.draw.line(canvas, FAILED, (area.left, level), (area.right, level), 1)
        # 3. latency against the SLO line
        x += self.chart_w + 10
        slo = float(s.slo_latency[0, k])
        top = 3.0 * slo
        pct = int(round(100 * service.slo_percentile))
        area = self._panel(canvas, x, y, self.chart_w, h, f"p{pct} latency (SLO {slo:g} s)")
        level = area.bottom - area.height / 3.0
        pygame.draw.line(canvas, SLO, (area.left, level), (area.right, level), 1)
        self._line(canvas, area, self._series(s, k, H_LATENCY), top, LATENCY)

    def _draw_legend(self, canvas: Any) -> None:
        y = HEIGHT - 20
        items = [
            (LOAD, "arrivals"),
            (CAPACITY, "ready capacity"),
            (READY, "ready"),
            (STARTING, "starting"),
            (FAILED, "failed / outage cap"),
            (DESIRED, "desired"),
            (LATENCY, "latency"),
            (SLO, "SLO"),
        ]
        x = float(self.margin)
        for color, label in items:
            pygame.draw.rect(canvas, color, (int(x), y, 12, 12))
            self.text(canvas, label, (x + 16, y - 1), color=MUTED, font=self.small)
            x += 28 + self.small.size(label)[0]
