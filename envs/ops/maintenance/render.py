"""Pygame drawing of the machine fleet (one replica's state snapshot).

Machines are tiles in a grid, coloured by condition from green (new) to red, with failed
machines dark and crossed out. A tile shows the condition label, a condition gauge and what the
machine did in the last step; a machine under repair carries a crew badge with its remaining
downtime (the label then gives the condition it will be back in), one being replaced a
replacement badge, a machine that broke down in the last step a red frame. The header shows the step, the episode profit and the crews in use.
Imported lazily by ``LeptonEnv.draw``; drawing never changes the simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pygame

from envs.core.render import INK, MUTED, PygameView
from envs.ops.maintenance.scenario import MaintenanceScenario
from envs.ops.maintenance.sim import DOWN, REPAIR, REPLACE, MaintenanceState

WIDTH, HEIGHT = 800, 450

TILE_EDGE = (70, 80, 100)
FAILED = (60, 60, 66)
ALERT = (210, 50, 50)
CREW = (40, 110, 200)
REPLACING = (150, 100, 200)
GOOD = (60, 150, 90)
GAUGE = (220, 220, 214)
HEALTHY = (70, 175, 90)
WORN = (240, 200, 60)
BAD = (225, 90, 60)


def condition_colour(condition: int, num_conditions: int) -> tuple[int, int, int]:
    """Colour of a condition: green (new) through yellow to red (worst working), dark (failed)."""
    if condition >= num_conditions - 1:
        return FAILED
    x = condition / max(num_conditions - 2, 1)
    lo, hi, f = (HEALTHY, WORN, x * 2) if x <= 0.5 else (WORN, BAD, (x - 0.5) * 2)
    return tuple(int(round(a + (b - a) * f)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


class MaintenanceRenderer(PygameView):
    """Draws one replica of the fleet for ``human`` or ``rgb_array`` rendering.

    Args:
        structure: the environment's structure scenario (machines, conditions, labels).
        render_mode: ``"human"`` (a window ticking at ``fps``) or ``"rgb_array"``.
        fps: frames per second in ``human`` mode.
    """

    def __init__(self, structure: MaintenanceScenario, render_mode: str, fps: int) -> None:
        super().__init__(
            structure, render_mode, fps, size=(WIDTH, HEIGHT), caption="Lepton Gym - maintenance"
        )
        self.n = structure.num_machines
        self.k = structure.num_conditions
        self.labels = structure.labels
        # grid of tiles below the header and above the legend
        self.margin = 20
        self.top, self.bottom = 70, HEIGHT - 40
        self.cols = self.n if self.n <= 6 else math.ceil(math.sqrt(self.n * 2.0))
        self.rows = math.ceil(self.n / self.cols)
        self.cell_w = (WIDTH - 2 * self.margin) / self.cols
        self.cell_h = (self.bottom - self.top) / self.rows
        self.tile_w = min(self.cell_w - 16, 220.0)
        self.tile_h = min(self.cell_h - 16, 200.0, max(self.tile_w, 100.0))

    def paint(self, canvas: Any, snapshot: MaintenanceState, info: Mapping[str, Any]) -> None:
        """Draw replica 0 of ``snapshot`` (a batch axis of one)."""
        self._draw_header(canvas, snapshot, info)
        for i in range(self.n):
            self._draw_machine(canvas, snapshot, i)
        self._draw_legend(canvas)

    # --- parts ------------------------------------------------------------------------------
    def _draw_header(self, canvas: Any, s: MaintenanceState, info: Mapping[str, Any]) -> None:
        t, horizon = int(s.t[0]), int(s.horizon[0])
        self.text(canvas, f"Step {t} / {horizon}", (self.margin, 14), font=self.big)
        profit = float(s.episode_profit[0])
        color = GOOD if profit >= 0 else ALERT
        self.text(canvas, f"Episode profit {profit:,.1f}", (220, 14), font=self.big, color=color)
        if "profit" in info:
            self.text(canvas, f"step {float(info['profit']):+,.2f}", (470, 18), color=MUTED)
        crews = int(s.crews[0])
        busy = int(np.sum((s.work[0] == REPAIR) & (s.downtime[0] > 0)))
        self.text(
            canvas,
            f"crews busy {busy} / {crews}",
            (WIDTH - self.margin, 18),
            color=CREW if busy else MUTED,
            anchor="topright",
        )
        x0, y0, w = self.margin, 46, WIDTH - 2 * self.margin
        pygame.draw.rect(canvas, GAUGE, (x0, y0, w, 6), border_radius=3)
        frac = 0.0 if horizon <= 0 else min(1.0, t / horizon)
        pygame.draw.rect(canvas, CREW, (x0, y0, int(w * frac), 6), border_radius=3)

    def _draw_machine(self, canvas: Any, s: MaintenanceState, i: int) -> None:
        """One tile: name and condition at the top, status row and condition gauge at the bottom.

        The status row is a badge while the machine is out of production (a crew member for a
        repair) and otherwise what the machine did in the last step.
        """
        row, col = divmod(i, self.cols)
        cx = self.margin + (col + 0.5) * self.cell_w
        cy = self.top + (row + 0.5) * self.cell_h
        tile = pygame.Rect(0, 0, int(self.tile_w), int(self.tile_h))
        tile.center = (int(cx), int(cy))
        c = int(s.condition[0, i])
        down = int(s.downtime[0, i])
        work = int(s.work[0, i])
        op = int(s.last_op[0, i])
        broke = bool(s.last_failed[0, i])
        denied = bool(s.last_denied[0, i])
        failed = c >= self.k - 1 and down == 0
        pygame.draw.rect(canvas, condition_colour(c, self.k), tile, border_radius=10)
        edge, width = (ALERT, 4) if broke else (TILE_EDGE, 2)
        pygame.draw.rect(canvas, edge, tile, width=width, border_radius=10)
        ink = (250, 250, 250) if c >= self.k - 1 else INK
        if failed:
            # a failed machine is crossed out
            inner = tile.inflate(-24, -24)
            pygame.draw.line(canvas, ALERT, inner.topleft, inner.bottomright, 3)
            pygame.draw.line(canvas, ALERT, inner.bottomleft, inner.topright, 3)
        self.text(canvas, f"Machine {i}", (cx, tile.top + 8), color=ink, anchor="midtop")
        label = self.labels[c] if down == 0 else f"{self.labels[c]} next"
        self.text(canvas, label, (cx, tile.top + 26), color=ink, font=self.big, anchor="midtop")
        # status row
        status_y = tile.bottom - 38
        if down > 0:
            badge_colour = CREW if work == REPAIR else REPLACING
            name = "repair" if work == REPAIR else "replace"
            badge = pygame.Rect(0, 0, int(tile.width - 20), 20)
            badge.center = (int(cx), int(status_y))
            pygame.draw.rect(canvas, badge_colour, badge, border_radius=10)
            shift = 0
            if work == REPAIR:
                # a crew member: head and body
                hx, hy = badge.left + 12, badge.centery
                pygame.draw.circle(canvas, (250, 250, 250), (hx, hy - 4), 4)
                pygame.draw.rect(canvas, (250, 250, 250), (hx - 4, hy + 1, 8, 6), border_radius=2)
                shift = 8
            self.text(
                canvas,
                f"{name}: {down} left",
                (badge.centerx + shift, badge.centery),
                color=(250, 250, 250),
                font=self.small,
                anchor="center",
            )
        else:
            text = {0: "running", REPAIR: "repaired", REPLACE: "replaced", DOWN: "back"}.get(op, "")
            if denied:
                text = "no crew: ran"
            if broke:
                text = "BROKE DOWN"
            self.text(
                canvas,
                text,
                (cx, status_y),
                color=ALERT if broke or denied else ink,
                font=self.small,
                anchor="center",
            )
        # condition gauge: the share of the way from failed to new
        gauge = pygame.Rect(tile.left + 12, tile.bottom - 22, tile.width - 24, 10)
        pygame.draw.rect(canvas, (252, 252, 250), gauge)
        health = 1.0 - c / max(self.k - 1, 1)
        pygame.draw.rect(canvas, TILE_EDGE, (gauge.left, gauge.top, int(gauge.width * health), 10))
        pygame.draw.rect(canvas, TILE_EDGE, gauge, width=1)

    def _draw_legend(self, canvas: Any) -> None:
        y = HEIGHT - 22
        x = float(self.margin)
        for c, label in enumerate(self.labels):
            pygame.draw.rect(canvas, condition_colour(c, self.k), (int(x), y, 12, 12))
            self.text(canvas, label, (x + 16, y - 1), color=MUTED, font=self.small)
            x += 26 + self.small.size(label)[0]
        for colour, label in ((CREW, "repair crew"), (REPLACING, "replacement"), (ALERT, "broke")):
            pygame.draw.rect(canvas, colour, (int(x), y, 12, 12))
            self.text(canvas, label, (x + 16, y - 1), color=MUTED, font=self.small)
            x += 26 + self.small.size(label)[0]
