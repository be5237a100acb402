"""Pygame drawing of the serial supply chain (one replica's state snapshot).

The chain is drawn from left to right: the customers, the retailer (stage 0), the upstream
stages, then the raw-material supplier on the right. Each stage is a box with a stock bar; the
link into each stage shows the orders in transit as small blocks placed by periods until arrival
(the block next to the stage arrives next period). Imported lazily by ``LeptonEnv.draw``; drawing
never changes the simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pygame

from envs.core.render import BACKGROUND, INK, MUTED, PygameView
from envs.ops.inventory.scenario import InventoryScenario
from envs.ops.inventory.sim import InventoryState

WIDTH, HEIGHT = 800, 450

BOX = (255, 255, 255)
BOX_EDGE = (70, 80, 100)
STOCK = (70, 140, 200)
STOCK_OVER = (30, 90, 160)
TRANSIT = (240, 170, 60)
LINK = (170, 170, 176)
SUPPLIER = (150, 120, 200)
SHORT = (210, 70, 60)
GOOD = (60, 150, 90)
CUSTOMER = (120, 120, 120)


class InventoryRenderer(PygameView):
    """Draws one replica of the supply chain for ``human`` or ``rgb_array`` rendering.

    Args:
        structure: the environment's structure scenario (number of stages, scales).
        render_mode: ``"human"`` (a window ticking at ``fps``) or ``"rgb_array"``.
        fps: frames per second in ``human`` mode.
    """

    def __init__(self, structure: InventoryScenario, render_mode: str, fps: int) -> None:
        super().__init__(
            structure, render_mode, fps, size=(WIDTH, HEIGHT), caption="Lepton Gym - supply chain"
        )
        n = structure.num_stages
        self.num_stages = n
        self.width = int(max(structure.lead_times)) + 1
        mean = _mean_demand(structure)
        caps = np.asarray(structure.capacities, dtype=np.float64)
        leads = np.asarray(structure.lead_times, dtype=np.float64)
        initial = np.asarray(structure.initial_inventory, dtype=np.float64)
        # stock bar scale per stage: the larger of the initial stock, two periods of inbound
        # capacity and the mean demand over the stage's lead time plus one
        self.stock_scale = np.maximum.reduce(
            [initial, 2.0 * caps, mean * (leads + 1.0), np.ones(n)]
        )
        # geometry: customers on the left, the supplier on the right, the stages in between,
        # each stage's box followed by the link from the stage above it
        self.margin = 20
        self.customer_x = self.margin + 50.0
        self.supplier_w = 74.0
        self.supplier_x = WIDTH - self.margin - self.supplier_w / 2
        left = self.margin + 110.0
        right = WIDTH - self.margin - self.supplier_w - 6.0
        self.stage_w = (right - left) / n
        self.box_w = min(84.0, self.stage_w * 0.45)
        self.stage_x = [left + i * self.stage_w + self.box_w / 2 + 6.0 for i in range(n)]
        self.box_top, self.box_h = 150, 200
        self.link_y = self.box_top + self.box_h / 2

    def paint(self, canvas: Any, snapshot: InventoryState, info: Mapping[str, Any]) -> None:
        """Draw replica 0 of ``snapshot`` (a batch axis of one)."""
        self._draw_header(canvas, snapshot, info)
        self._draw_chain(canvas, snapshot)
        self._draw_customers(canvas, snapshot)
        self._draw_legend(canvas)

    # --- parts ------------------------------------------------------------------------------
    def _draw_header(self, canvas: Any, s: InventoryState, info: Mapping[str, Any]) -> None:
        t, horizon = int(s.t[0]), int(s.horizon[0])
        self.text(canvas, f"Period {t} / {horizon}", (self.margin, 14), font=self.big)
        profit = float(s.episode_profit[0])
        color = GOOD if profit >= 0 else SHORT
        self.text(canvas, f"Episode profit {profit:,.1f}", (260, 14), font=self.big, color=color)
        if "profit" in info:
            self.text(canvas, f"period {float(info['profit']):+,.1f}", (500, 18), color=MUTED)
        mode = "backlog" if bool(s.backlog[0]) else "lost sales"
        self.text(canvas, mode, (WIDTH - self.margin, 18), color=MUTED, anchor="topright")
        # progress bar of the episode
        x0, y0, w = self.margin, 46, WIDTH - 2 * self.margin
        pygame.draw.rect(canvas, LINK, (x0, y0, w, 6), border_radius=3)
        frac = 0.0 if horizon <= 0 else min(1.0, t / horizon)
        pygame.draw.rect(canvas, STOCK, (x0, y0, int(w * frac), 6), border_radius=3)

    def _draw_chain(self, canvas: Any, s: InventoryState) -> None:
        n = self.num_stages
        y = self.link_y
        sup = pygame.Rect(0, 0, int(self.supplier_w), 90)
        sup.center = (int(self.supplier_x), int(y))
        pygame.draw.rect(canvas, SUPPLIER, sup, border_radius=8)
        self.text(canvas, "Supplier", (self.supplier_x, sup.top - 4), anchor="midbottom")
        self.text(canvas, "raw", (self.supplier_x, sup.centery - 9), color=BOX, anchor="center")
        self.text(
            canvas, "material", (self.supplier_x, sup.centery + 9), color=BOX, anchor="center"
        )
        for i in range(n):
            x_to = self.stage_x[i] + self.box_w / 2
            x_from = sup.left if i == n - 1 else self.stage_x[i + 1] - self.box_w / 2
            self._draw_link(canvas, s, i, x_from, x_to, y)
            self._draw_stage(canvas, s, i)

    def _draw_link(
        self, canvas: Any, s: InventoryState, i: int, x_from: float, x_to: float, y: float
    ) -> None:
        """The link from stage ``i + 1`` (or the supplier) into stage ``i`` and its pipeline."""
        pygame.draw.line(canvas, LINK, (x_to + 2, y), (x_from - 2, y), 3)
        pygame.draw.polygon(canvas, LINK, [(x_to + 2, y), (x_to + 11, y - 6), (x_to + 11, y + 6)])
        mid = (x_from + x_to) / 2
        lead = int(s.lead_times[0, i])
        cap = max(float(s.capacities[0, i]), 1.0)
        self.text(
            canvas,
            f"L={lead}  cap {cap:g}",
            (mid, y + 8),
            color=MUTED,
            font=self.small,
            anchor="midtop",
        )
        shipped = float(s.last_orders[0, i])
        self.text(
            canvas,
            f"shipped {shipped:g}",
            (mid, y + 22),
            color=MUTED,
            font=self.small,
            anchor="midtop",
        )
        owed = float(s.owed[0, i + 1])
        if owed > 0:
            self.text(
                canvas,
                f"owed {owed:g}",
                (mid, y + 36),
                color=SHORT,
                font=self.small,
                anchor="midtop",
            )
        pipeline = np.asarray(s.pipeline[0, i], dtype=np.float64)
        total = float(pipeline.sum())
        self.text(
            canvas,
            f"in transit {total:g}",
            (mid, y - 44),
            color=INK if total > 0 else MUTED,
            font=self.small,
            anchor="midbottom",
        )
        # one cell per period until arrival; cell 0 (arriving next period) is next to stage i
        span = max(x_from - x_to - 18.0, 8.0)
        cells = max(lead, 1)
        cell = span / cells
        block_w = max(min(cell - 2.0, 20.0), 2.0)
        label = cell >= 22.0
        for k in range(min(self.width, pipeline.size)):
            qty = float(pipeline[k])
            if qty <= 0:
                continue
            cx = x_to + 14.0 + (min(k, cells - 1) + 0.5) * cell
            height = 4.0 + 26.0 * min(qty / cap, 1.2)
            rect = pygame.Rect(0, 0, int(block_w), int(height))
            rect.midbottom = (int(cx), int(y - 4))
            pygame.draw.rect(canvas, TRANSIT, rect, border_radius=2)
            if label:
                self.text(
                    canvas, f"{qty:g}", (cx, rect.top - 1), font=self.small, anchor="midbottom"
                )

    def _draw_stage(self, canvas: Any, s: InventoryState, i: int) -> None:
        cx = self.stage_x[i]
        box = pygame.Rect(0, 0, int(self.box_w), int(self.box_h))
        box.midtop = (int(cx), int(self.box_top))
        pygame.draw.rect(canvas, BOX, box, border_radius=8)
        pygame.draw.rect(canvas, BOX_EDGE, box, width=2, border_radius=8)
        name = "Retailer" if i == 0 else f"Stage {i}"
        self.text(canvas, name, (cx, box.top - 4), anchor="midbottom")
        on_hand = float(s.on_hand[0, i])
        scale = float(self.stock_scale[i])
        frac = min(max(on_hand, 0.0) / scale, 1.0)
        bar_h = self.box_h - 56
        bar = pygame.Rect(0, 0, int(self.box_w * 0.42), int(bar_h))
        bar.midtop = (int(cx), box.top + 10)
        pygame.draw.rect(canvas, BACKGROUND, bar)
        filled = int(round(bar_h * frac))
        fill = pygame.Rect(bar.left, bar.bottom - filled, bar.width, filled)
        pygame.draw.rect(canvas, STOCK_OVER if on_hand > scale else STOCK, fill)
        pygame.draw.rect(canvas, BOX_EDGE, bar, width=1)
        self.text(canvas, f"{on_hand:g}", (cx, bar.bottom + 4), anchor="midtop")
        self.text(
            canvas,
            "on hand",
            (cx, bar.bottom + 22),
            color=MUTED,
            font=self.small,
            anchor="midtop",
        )
        self.text(
            canvas,
            f"scale {scale:g}",
            (cx, box.bottom + 6),
            color=MUTED,
            font=self.small,
            anchor="midtop",
        )

    def _draw_customers(self, canvas: Any, s: InventoryState) -> None:
        cx = self.customer_x
        top = self.box_top
        self.text(canvas, "Customers", (cx, top - 4), anchor="midbottom")
        pygame.draw.circle(canvas, CUSTOMER, (int(cx), int(top + 22)), 11)
        pygame.draw.rect(canvas, CUSTOMER, (int(cx - 13), int(top + 35), 26, 28), border_radius=6)
        y = top + 76
        demand = float(s.last_demand[0])
        sales = float(s.last_sales[0])
        self.text(canvas, f"demand {demand:g}", (cx, y), anchor="midtop")
        self.text(canvas, f"sales {sales:g}", (cx, y + 20), color=GOOD, anchor="midtop")
        if bool(s.backlog[0]):
            shortfall = float(s.owed[0, 0])
            label = f"backlog {shortfall:g}"
        else:
            shortfall = float(s.last_lost[0])
            label = f"lost {shortfall:g}"
        color = SHORT if shortfall > 0 else MUTED
        self.text(canvas, label, (cx, y + 40), color=color, anchor="midtop")
        # what customers wanted this period (new demand and backlog), split into sales and
        # shortfall: sales + new backlog (or lost units) = demand + previous backlog
        wanted = sales + shortfall
        bar = pygame.Rect(int(cx - 30), int(y + 64), 60, 10)
        pygame.draw.rect(canvas, SHORT if wanted > 0 else LINK, bar)
        served = sales / wanted if wanted > 0 else 0.0
        pygame.draw.rect(canvas, GOOD, (bar.left, bar.top, int(bar.width * served), bar.height))
        x_retail = self.stage_x[0] - self.box_w / 2
        pygame.draw.line(canvas, LINK, (x_retail - 2, self.link_y), (cx + 40, self.link_y), 3)
        pygame.draw.polygon(
            canvas,
            LINK,
            [(cx + 34, self.link_y), (cx + 43, self.link_y - 6), (cx + 43, self.link_y + 6)],
        )

    def _draw_legend(self, canvas: Any) -> None:
        y = HEIGHT - 22
        items = [
            (STOCK, "stock on hand"),
            (TRANSIT, "in transit (by periods to arrival)"),
            (SHORT, "shortage"),
            (GOOD, "sales"),
        ]
        x = float(self.margin)
        for color, label in items:
            pygame.draw.rect(canvas, color, (int(x), y, 12, 12))
            self.text(canvas, label, (x + 16, y - 1), color=MUTED, font=self.small)
            x += 30 + self.small.size(label)[0]


def _mean_demand(structure: InventoryScenario) -> float:
    demand = structure.demand
    if demand.kind == "series":
        return float(np.mean(demand.series[: structure.horizon]))
    return float(demand.mean)
