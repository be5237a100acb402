"""Pygame drawing of one recommendation session (one replica's state snapshot).

Top left, the user's interest profile (one bar per topic, coloured by topic); top right, the
budget and satisfaction over the session so far; below, the candidates as small cards (those
whose item the last slate showed outlined) and the last slate as large cards coloured by their
main topic, with quality and clickbait, the clicked card outlined. Imported lazily by
``LeptonEnv.draw``; drawing never changes the simulation (the renderer keeps its own history of
the curves, restarted when a new session begins).
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pygame

from envs.core.render import BACKGROUND, INK, MUTED, PygameView
from envs.recsys.scenario import RecScenario
from envs.recsys.sim import RecState

WIDTH, HEIGHT = 800, 450

PANEL = (255, 255, 255)
EDGE = (200, 200, 206)
BUDGET = (70, 140, 200)
SATISFACTION = (60, 150, 90)
CLICK = (220, 60, 50)
NEGATIVE = (210, 120, 110)


def topic_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct colours, one per topic."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.55, 0.85)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


class RecRenderer(PygameView):
    """Draws one replica of a recommendation session for ``human`` or ``rgb_array`` rendering.

    Args:
        structure: the environment's structure scenario (topics, candidates, slate size).
        render_mode: ``"human"`` (a window ticking at ``fps``) or ``"rgb_array"``.
        fps: frames per second in ``human`` mode.
    """

    def __init__(self, structure: RecScenario, render_mode: str, fps: int) -> None:
        super().__init__(
            structure, render_mode, fps, size=(WIDTH, HEIGHT), caption="Lepton Gym - recommendation"
        )
        self.colors = topic_colors(structure.num_topics)
        self.history: list[tuple[float, float]] = []
        self.last_t = -1

    def paint(self, canvas: Any, snapshot: RecState, info: Mapping[str, Any]) -> None:
        """Draw replica 0 of ``snapshot`` (a batch axis of one)."""
        t = int(snapshot.t[0])
        budget0 = max(float(snapshot.initial_budget[0]), 1e-9)
        if t <= self.last_t or not self.history:
            self.history = []
        if t != self.last_t or not self.history:
            self.history.append(
                (float(snapshot.budget[0]) / budget0, float(snapshot.satisfaction[0]))
            )
        self.last_t = t
        self._header(canvas, snapshot, info)
        self._interests(canvas, snapshot, pygame.Rect(20, 50, 360, 150))
        self._curves(canvas, pygame.Rect(410, 50, 370, 150))
        self._candidates(canvas, snapshot, pygame.Rect(20, 222, 760, 50))
        self._slate(canvas, snapshot, pygame.Rect(20, 290, 760, 150))

    # --- parts ------------------------------------------------------------------------------
    def _header(self, canvas: Any, s: RecState, info: Mapping[str, Any]) -> None:
        t = int(s.t[0])
        self.text(canvas, f"Step {t}", (20, 14), font=self.big)
        watch = float(s.episode_watch[0])
        self.text(canvas, f"Watched {watch:.1f} min", (140, 14), font=self.big)
        clicks = int(s.clicks[0])
        ctr = clicks / t if t else 0.0
        self.text(canvas, f"clicks {clicks}  CTR {ctr:.2f}", (360, 18), color=MUTED)
        if bool(s.left[0]):
            self.text(canvas, "user left", (WIDTH - 20, 18), color=CLICK, anchor="topright")
        elif float(s.budget[0]) <= 0.0:
            self.text(canvas, "budget spent", (WIDTH - 20, 18), color=CLICK, anchor="topright")

    def _panel(self, canvas: Any, rect: Any, title: str) -> None:
        pygame.draw.rect(canvas, PANEL, rect, border_radius=6)
        pygame.draw.rect(canvas, EDGE, rect, 1, border_radius=6)
        self.text(canvas, title, (rect.left + 8, rect.top + 6), color=MUTED, font=self.small)

    def _interests(self, canvas: Any, s: RecState, rect: Any) -> None:
        self._panel(canvas, rect, "interest profile (latent)")
        values = np.asarray(s.interests[0])
        n = values.size
        mid = rect.top + 22 + (rect.height - 30) / 2
        half = (rect.height - 34) / 2
        pygame.draw.line(canvas, EDGE, (rect.left + 8, mid), (rect.right - 8, mid), 1)
        bar_w = (rect.width - 16) / max(n, 1)
        for i, v in enumerate(values):
            h = float(np.clip(v, -1.0, 1.0)) * half
            x = rect.left + 8 + i * bar_w
            top = mid - max(h, 0.0)
            color = self.colors[i] if v >= 0 else NEGATIVE
            pygame.draw.rect(canvas, color, (x + 1, top, max(bar_w - 2, 1), max(abs(h), 1)))

    def _curves(self, canvas: Any, rect: Any) -> None:
        self._panel(canvas, rect, "budget left and satisfaction")
        self.text(canvas, "budget", (rect.right - 110, rect.top + 6), color=BUDGET, font=self.small)
        self.text(
            canvas,
            "satisfaction",
            (rect.right - 70, rect.top + 6),
            color=SATISFACTION,
            font=self.small,
        )
        plot = pygame.Rect(rect.left + 8, rect.top + 24, rect.width - 16, rect.height - 32)
        pygame.draw.rect(canvas, BACKGROUND, plot)
        n = len(self.history)
        span = max(n - 1, 1)
        for k, color in ((0, BUDGET), (1, SATISFACTION)):
            pts = [
                (
                    plot.left + plot.width * i / span,
                    plot.bottom - plot.height * float(np.clip(h[k], 0.0, 1.0)),
                )
                for i, h in enumerate(self.history)
            ]
            if len(pts) >= 2:
                pygame.draw.lines(canvas, color, False, pts, 2)
            elif pts:
                pygame.draw.circle(canvas, color, (int(pts[0][0]), int(pts[0][1])), 3)

    def _main_topic(self, topics: np.ndarray) -> int:
        return int(np.argmax(np.abs(topics)))

    def _candidates(self, canvas: Any, s: RecState, rect: Any) -> None:
        topics = np.asarray(s.candidate_topics[0])
        c = topics.shape[0]
        self.text(canvas, "candidates", (rect.left, rect.top - 14), color=MUTED, font=self.small)
        # the slate's positions point into the previous candidate set: compare items
        shown = {int(v) for v in np.asarray(s.last_slate_items[0]) if v >= 0}
        items = np.asarray(s.candidates[0])
        w = min(60.0, (rect.width - 4 * c) / max(c, 1))
        for j in range(min(c, int(rect.width // (w + 4)))):
            x = rect.left + j * (w + 4)
            card = pygame.Rect(int(x), rect.top, int(w), rect.height - 14)
            pygame.draw.rect(
                canvas, self.colors[self._main_topic(topics[j])], card, border_radius=4
            )
            if int(items[j]) in shown:
                pygame.draw.rect(canvas, INK, card, 2, border_radius=4)
            q = float(s.candidate_quality[0, j])
            self.text(canvas, f"{q:+.1f}", card.center, color=INK, font=self.small, anchor="center")

    def _slate(self, canvas: Any, s: RecState, rect: Any) -> None:
        self.text(canvas, "last slate", (rect.left, rect.top - 14), color=MUTED, font=self.small)
        items = np.asarray(s.last_slate_items[0])
        k = items.size
        if items[0] < 0:
            self.text(canvas, "no slate shown yet", rect.center, color=MUTED, anchor="center")
            return
        click = int(s.last_click[0])
        w = min(170.0, (rect.width - 12 * k) / max(k, 1))
        t = self.structure.num_topics
        feats = np.asarray(s.last_slate_features[0])
        for j in range(k):
            x = rect.left + j * (w + 12)
            card = pygame.Rect(int(x), rect.top, int(w), rect.height - 20)
            topic = self._main_topic(feats[j, :t])
            pygame.draw.rect(canvas, self.colors[topic], card, border_radius=8)
            if j == click:
                pygame.draw.rect(canvas, CLICK, card.inflate(8, 8), 4, border_radius=10)
            self.text(
                canvas, f"item {int(items[j])}", (card.centerx, card.top + 14), anchor="midtop"
            )
            self.text(
                canvas,
                f"topic {topic}",
                (card.centerx, card.top + 36),
                anchor="midtop",
                font=self.small,
            )
            q, bait = float(feats[j, t]), float(feats[j, t + 1])
            self.text(
                canvas,
                f"quality {q:+.2f}  clickbait {bait:.2f}",
                (card.centerx, card.top + 54),
                anchor="midtop",
                font=self.small,
            )
            if j == click:
                watch = float(s.last_watch[0])
                rating = float(s.last_rating[0])
                self.text(
                    canvas,
                    f"clicked: {watch:.1f} min, {rating:.0f} stars",
                    (card.centerx, card.bottom - 24),
                    anchor="midtop",
                    font=self.small,
                )
        if click < 0:
            self.text(
                canvas, "no click", (rect.right - 10, rect.top + 10), color=CLICK, anchor="topright"
            )
