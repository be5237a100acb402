"""Pygame drawing of a road network with its vehicles and signals (one replica's state snapshot).

The network is drawn from its geometry: every lane as a strip of its width along its shape, the
junction polygons the network has (none are invented), and lane separators and centre lines when
lanes are wide enough on screen. The map keeps the network's aspect ratio and fills the canvas
below a header; the transform and this static background are computed once per network. Every
frame then blits the background and adds:

- vehicles as small oriented rectangles (single pixels' squares when the scale is too small),
  placed along their lane's shape, or along the connection's shape while inside a junction,
  coloured by speed relative to the limit where they drive (red stopped, yellow, green free);
- one bar per signal link at the end of its incoming lane, coloured by the link's state (SUMO's
  colours: ``G`` green, ``g`` dark green, ``y`` yellow, ``r`` red, ``s`` purple, ``o``/``O``
  off); a lane with several links is split across its width, right turns on the right;
- a header with the clock (``hh:mm:ss``) and the vehicles on the network, the queue, the mean
  travel time, the mean speed and the trips finished.

Positions are scaled from the simulator's lane lengths to the drawn shapes' lengths, as SUMO's
GUI does. Imported lazily by ``LeptonEnv.draw``; drawing never changes the simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pygame

from envs.core.render import INK, MUTED, PygameView
from envs.traffic.network import LINK_STATES, Network
from envs.traffic.scenario import TrafficScenario
from envs.traffic.sim import (
    F_POS,
    F_SPEED,
    I_ALIVE,
    I_INCONN,
    I_LANE,
    I_TYPE,
    METRICS,
    TrafficState,
)

WIDTH, HEIGHT = 800, 600
HEADER = 44
MARGIN = 12

PANEL = (255, 255, 255)
EDGE = (200, 200, 206)
GROUND = (232, 234, 228)
ROAD = (92, 94, 100)
JUNCTION = (110, 112, 118)
MARKING = (150, 152, 158)
CENTRE = (225, 225, 225)

VEHICLE_WIDTH = 1.8
"""Drawn vehicle width, metres (SUMO's passenger car)."""
BAR_DEPTH = 1.2
"""Drawn depth of a signal bar along its lane, metres."""

SPEED_STOPS = np.array([0.0, 0.5, 1.0])
SPEED_COLORS = np.array([[215, 40, 40], [240, 200, 40], [40, 190, 70]], dtype=np.float64)
"""Vehicle colours at speed / limit 0, 0.5 and 1 (linearly interpolated between)."""

LINK_COLORS: dict[str, tuple[int, int, int]] = {
    "r": (255, 0, 0),
    "y": (255, 255, 0),
    "s": (128, 0, 128),
    "g": (0, 150, 0),
    "G": (0, 255, 0),
    "o": (128, 64, 0),
    "O": (0, 255, 255),
    "m": (150, 150, 150),
    "M": (230, 230, 230),
    "=": (150, 150, 150),
}
"""Bar colour of every link state (SUMO-GUI's)."""
LINK_PALETTE = np.array([LINK_COLORS[ch] for ch in LINK_STATES], dtype=np.uint8)

TURN_ORDER = {"r": 0, "R": 1, "s": 2, "L": 3, "l": 4, "t": 5}
"""Order of a lane's links across its width, from its right side."""


def format_clock(seconds: float) -> str:
    """``hh:mm:ss`` of a simulation time (hours keep counting past a day)."""
    s = max(int(math.floor(seconds + 1e-9)), 0)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def speed_colors(ratio: np.ndarray) -> np.ndarray:
    """``[N, 3]`` uint8 colours of speed / limit ``ratio`` (clipped to ``[0, 1]``)."""
    r = np.clip(ratio, 0.0, 1.0)
    out = np.empty((r.size, 3), dtype=np.uint8)
    for k in range(3):
        out[:, k] = np.interp(r, SPEED_STOPS, SPEED_COLORS[:, k]).round()
    return out


def _as_polyline(shape: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    pts = np.asarray(shape, dtype=np.float64).reshape(-1, 2)
    if len(pts) >= 2:
        return pts
    if len(pts) == 1:
        return np.concatenate([pts, pts])
    if fallback is not None:
        return fallback
    return np.zeros((2, 2))


class Polylines:
    """Many polylines in flat arrays, for vectorised lookup of points by distance.

    Distances are in the simulator's metres: ``nominal[p]`` (a lane's or connection's length)
    is stretched onto the polyline's drawn length. Points of all polylines share one increasing
    key (a polyline's offset plus the distance along it), so one ``searchsorted`` finds the
    segments of any number of queries.

    Args:
        shapes: ``P`` polylines ``[n, 2]`` with ``n >= 2``.
        nominal: ``[P]`` simulated lengths (0 or less: the drawn length).
    """

    def __init__(self, shapes: Sequence[np.ndarray], nominal: np.ndarray) -> None:
        counts = np.array([len(s) for s in shapes], dtype=np.int64)
        self.start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.last_seg = self.start + counts - 2
        pts = np.concatenate(shapes) if shapes else np.zeros((0, 2))
        self.points = pts
        seg = np.diff(pts, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1]) if len(pts) else np.zeros(0)
        # the segment joining one polyline to the next is never used; give it no length
        owner = np.repeat(np.arange(len(shapes)), counts)
        inner = owner[1:] == owner[:-1] if len(pts) else np.zeros(0, bool)
        seg_len = np.where(inner, seg_len, 0.0)
        self.length = np.bincount(owner[:-1][inner], seg_len[inner], minlength=len(shapes))
        self.offset = np.concatenate([[0.0], np.cumsum(self.length + 1.0)[:-1]])
        within = np.concatenate([[0.0], np.cumsum(seg_len)]) if len(pts) else np.zeros(0)
        self.key = within - within[self.start][owner] + self.offset[owner] if len(pts) else within
        nominal = np.asarray(nominal, dtype=np.float64)
        self.factor = np.where(
            (nominal > 0) & (self.length > 0), self.length / np.maximum(nominal, 1e-9), 1.0
        )
        chord = np.array([s[-1] - s[0] for s in shapes]).reshape(-1, 2)
        chord_len = np.hypot(chord[:, 0], chord[:, 1])
        chord = np.where(chord_len[:, None] > 0, chord / np.maximum(chord_len, 1e-12)[:, None], 0)
        chord[chord_len <= 0] = (1.0, 0.0)
        unit = np.zeros((max(len(pts) - 1, 0), 2))
        ok = seg_len > 1e-9
        unit[ok] = seg[ok] / seg_len[ok, None]
        unit[~ok] = chord[owner[:-1][~ok]] if len(pts) else unit[~ok]
        self.unit = unit
        self.seg_len = seg_len

    def locate(self, idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points ``[N, 2]`` and unit directions ``[N, 2]`` at ``dist`` along polylines ``idx``."""
        d = np.clip(dist * self.factor[idx], 0.0, self.length[idx])
        key = self.offset[idx] + d
        j = np.searchsorted(self.key, key, side="right") - 1
        j = np.clip(j, self.start[idx], self.last_seg[idx])
        t = (key - self.key[j]) / np.where(self.seg_len[j] > 0, self.seg_len[j], 1.0)
        t = np.clip(t, 0.0, 1.0)
        xy = self.points[j] + t[:, None] * (self.points[j + 1] - self.points[j])
        return xy, self.unit[j]


def _offset(shape: np.ndarray, dist: float) -> np.ndarray:
    """``shape`` moved ``dist`` metres to its left (mitred joints, y pointing up)."""
    seg = np.diff(shape, axis=0)
    n = np.hypot(seg[:, 0], seg[:, 1])
    keep = n > 1e-9
    if not keep.any():
        return shape.copy()
    seg = seg[keep] / n[keep, None]
    pts = np.concatenate([shape[:1], shape[1:][keep]])
    normal = np.stack([-seg[:, 1], seg[:, 0]], axis=1)
    vert = np.concatenate([normal[:1], normal[:-1] + normal[1:], normal[-1:]])
    vlen = np.hypot(vert[:, 0], vert[:, 1])
    vert = vert / np.maximum(vlen, 1e-9)[:, None]
    cos = np.ones(len(pts))
    cos[1:-1] = np.einsum("ij,ij->i", vert[1:-1], normal[1:])
    scale = 1.0 / np.clip(cos, 0.5, 1.0)
    return pts + dist * scale[:, None] * vert


class MapTransform:
    """World metres (y up) to canvas pixels (y down) keeping the aspect ratio.

    Args:
        bounds: ``(xmin, ymin, xmax, ymax)`` of the drawing, metres.
        area: ``(left, top, width, height)`` of the canvas region to fill, pixels.
    """

    def __init__(self, bounds: tuple[float, float, float, float], area: tuple[int, ...]) -> None:
        xmin, ymin, xmax, ymax = bounds
        left, top, width, height = area
        w, h = max(xmax - xmin, 1e-6), max(ymax - ymin, 1e-6)
        self.scale = min(width / w, height / h)
        self.x0 = left + (width - w * self.scale) / 2 - xmin * self.scale
        self.y0 = top + (height - h * self.scale) / 2 + ymax * self.scale

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Canvas coordinates ``[..., 2]`` of world points ``xy``."""
        xy = np.asarray(xy, dtype=np.float64)
        out = np.empty_like(xy)
        out[..., 0] = self.x0 + xy[..., 0] * self.scale
        out[..., 1] = self.y0 - xy[..., 1] * self.scale
        return out


class TrafficView(PygameView):
    """Draws one replica of a traffic simulation for ``human`` or ``rgb_array`` rendering.

    Args:
        structure: the environment's scenario (its network fixes the drawing).
        render_mode: ``"human"`` (a window ticking at ``fps``) or ``"rgb_array"``.
        fps: frames per second in ``human`` mode.
        size: canvas size ``(width, height)`` in pixels.

    Attributes:
        transform: world metres to canvas pixels.
        bar_link: ``[K]`` global link index (into ``link_state``) of every signal bar.
        bar_center: ``[K, 2]`` canvas position of every signal bar's centre.
    """

    def __init__(
        self,
        structure: TrafficScenario,
        render_mode: str,
        fps: int,
        *,
        size: tuple[int, int] = (WIDTH, HEIGHT),
    ) -> None:
        super().__init__(
            structure, render_mode, fps, size=size, caption=f"Lepton Gym - {structure.name}"
        )
        net = structure.network
        self.network = net
        self.vehicle_length = np.array(
            [t.length for t in structure.vtypes.values()] or [5.0], dtype=np.float64
        )
        lanes = [_as_polyline(s) for s in net.lane_shapes]
        conns = []
        for c in range(net.num_connections):
            a, b = int(net.conn_from[c]), int(net.conn_to[c])
            gap = np.stack([lanes[a][-1], lanes[b][0]])
            conns.append(_as_polyline(net.conn_shapes[c], gap))
        self.lane_polys = lanes
        self.conn_polys = conns
        self.nominal = np.concatenate([net.lane_length, net.conn_length])
        self.paths = Polylines(lanes + conns, self.nominal)
        self.limit = np.concatenate([net.lane_speed, net.conn_speed])
        self.num_lanes = net.num_lanes
        self.transform = MapTransform(
            self._bounds(net),
            (MARGIN, HEADER + MARGIN, size[0] - 2 * MARGIN, size[1] - HEADER - 2 * MARGIN),
        )
        self._bars(net)
        self.background: Any = None

    # --- static parts (once per network) -----------------------------------------------------
    def _bounds(self, net: Network) -> tuple[float, float, float, float]:
        parts = [*self.lane_polys, *self.conn_polys, *net.junction_shapes.values()]
        pts = np.concatenate([np.asarray(p).reshape(-1, 2) for p in parts] or [np.zeros((1, 2))])
        pad = float(net.lane_width.max()) if net.num_lanes else 0.0
        lo = pts.min(axis=0) - pad
        hi = pts.max(axis=0) + pad
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def _bars(self, net: Network) -> None:
        """One quad per (lane, link) at the lane's end, split across the lane's width."""
        offsets = np.concatenate([[0], np.cumsum([s.num_links for s in net.signals])])
        scale = self.transform.scale
        depth = max(BAR_DEPTH, 2.0 / scale)
        links, quads = [], []
        for lane, conns in enumerate(net.lane_outgoing):
            per_link: dict[int, int] = {}
            for c in conns:
                s = int(net.conn_tls[c])
                if s < 0:
                    continue
                glink = int(offsets[s] + net.conn_link[c])
                rank = TURN_ORDER.get(net.conn_dir[c], 2)
                per_link[glink] = min(per_link.get(glink, rank), rank)
            if not per_link:
                continue
            shape = self.lane_polys[lane]
            end, ux = shape[-1], shape[-1] - shape[-2]
            n = math.hypot(*ux)
            ux = ux / n if n > 1e-9 else np.array([1.0, 0.0])
            left = np.array([-ux[1], ux[0]])
            width = max(float(net.lane_width[lane]), 2.0 / scale)
            ordered = sorted(per_link, key=lambda g: (per_link[g], g))
            step = width / len(ordered)
            for k, glink in enumerate(ordered):
                a = -width / 2 + k * step
                b = a + step
                quads.append(
                    [
                        end + a * left,
                        end + b * left,
                        end + b * left - depth * ux,
                        end + a * left - depth * ux,
                    ]
                )
                links.append(glink)
        self.bar_link = np.array(links, dtype=np.int64)
        quads_px = self.transform(np.array(quads).reshape(-1, 4, 2))
        self.bar_quads = quads_px.tolist()
        self.bar_center = quads_px.mean(axis=1) if len(links) else np.zeros((0, 2))

    def _draw_background(self) -> Any:
        net = self.network
        tf = self.transform
        surface = pygame.Surface(self.size)
        surface.fill(GROUND)
        for poly in net.junction_shapes.values():
            pts = np.asarray(poly).reshape(-1, 2)
            if len(pts) >= 3:
                pygame.draw.polygon(surface, JUNCTION, tf(pts).tolist())
        for lane, shape in enumerate(self.lane_polys):
            self._strip(surface, shape, float(net.lane_width[lane]), ROAD)
        if float(net.lane_width.min(initial=3.2)) * tf.scale >= 4.0:
            last = np.zeros(net.num_edges, dtype=np.int64)
            np.maximum.at(last, net.lane_edge, net.lane_index)
            for lane, shape in enumerate(self.lane_polys):
                half = float(net.lane_width[lane]) / 2
                if net.lane_index[lane] > 0:
                    line = tf(_offset(shape, -half)).tolist()
                    pygame.draw.lines(surface, MARKING, False, line, 1)
                if net.lane_index[lane] == last[net.lane_edge[lane]]:
                    line = tf(_offset(shape, half)).tolist()
                    pygame.draw.lines(surface, CENTRE, False, line, 1)
        pygame.draw.rect(surface, PANEL, (0, 0, self.size[0], HEADER))
        pygame.draw.line(surface, EDGE, (0, HEADER - 1), (self.size[0], HEADER - 1))
        self._legend(surface)
        return surface

    def _strip(self, surface: Any, shape: np.ndarray, width: float, color: Any) -> None:
        tf = self.transform
        if width * tf.scale < 2.5:
            pygame.draw.lines(surface, color, False, tf(shape).tolist(), 1)
            return
        left = _offset(shape, width / 2)
        right = _offset(shape, -width / 2)
        pygame.draw.polygon(surface, color, tf(np.concatenate([left, right[::-1]])).tolist())

    def _legend(self, surface: Any) -> None:
        x1 = self.size[0] - 40
        x0 = x1 - 80
        ratio = np.linspace(0.0, 1.0, x1 - x0)
        for x, color in zip(range(x0, x1), speed_colors(ratio).tolist(), strict=True):
            pygame.draw.line(surface, color, (x, 27), (x, 33))
        small = self.small
        self.text(surface, "slow", (x0 - 4, 30), color=MUTED, font=small, anchor="midright")
        self.text(surface, "fast", (x1 + 4, 30), color=MUTED, font=small, anchor="midleft")
        name = self.structure.name
        self.text(surface, name, (self.size[0] - 12, 6), color=MUTED, font=small, anchor="topright")

    # --- per frame ---------------------------------------------------------------------------
    def vehicles(
        self, snapshot: TrafficState
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Where and how replica 0's vehicles are drawn.

        Returns:
            Canvas centres ``[N, 2]``, unit directions ``[N, 2]`` in canvas coordinates
            (y down), lengths ``[N]`` in metres and colours ``[N, 3]`` (uint8).
        """
        vi = snapshot.veh_int[0]
        vf = snapshot.veh_float[0]
        alive = np.flatnonzero(vi[:, I_ALIVE] == 1)
        pos = vf[alive, F_POS]
        inconn = vi[alive, I_INCONN]
        inside = (pos < 0.0) & (inconn >= 0)
        path = np.where(inside, self.num_lanes + inconn, vi[alive, I_LANE]).astype(np.int64)
        front = np.where(inside, self.nominal[path] + pos, pos)
        types = np.clip(vi[alive, I_TYPE], 0, len(self.vehicle_length) - 1)
        length = self.vehicle_length[types]
        xy, unit = self.paths.locate(path, front - length / 2)
        ratio = vf[alive, F_SPEED] / self.limit[path]
        unit = unit * np.array([1.0, -1.0])
        return self.transform(xy), unit, length, speed_colors(ratio)

    def paint(self, canvas: Any, snapshot: TrafficState, info: Mapping[str, Any]) -> None:
        """Draw replica 0 of ``snapshot`` (a batch axis of one)."""
        if self.background is None:
            self.background = self._draw_background()
        canvas.blit(self.background, (0, 0))
        canvas.set_clip(pygame.Rect(0, HEADER, self.size[0], self.size[1] - HEADER))
        self._paint_vehicles(canvas, snapshot)
        self._paint_signals(canvas, snapshot)
        canvas.set_clip(None)
        self._header(canvas, snapshot, info)

    def _paint_vehicles(self, canvas: Any, snapshot: TrafficState) -> None:
        center, unit, length, colors = self.vehicles(snapshot)
        if not len(center):
            return
        scale = self.transform.scale
        half_len = np.maximum(length * scale, 3.0) / 2
        if float(half_len.max()) * 2 < 4.0:
            self._paint_dots(canvas, center, colors)
            return
        half_w = max(VEHICLE_WIDTH * scale, 2.0) / 2
        along = unit * half_len[:, None]
        across = np.stack([-unit[:, 1], unit[:, 0]], axis=1) * half_w
        corners = np.stack(
            [
                center + along + across,
                center + along - across,
                center - along - across,
                center - along + across,
            ],
            axis=1,
        )
        polygon = pygame.draw.polygon
        for quad, color in zip(corners.tolist(), colors.tolist(), strict=True):
            polygon(canvas, color, quad)

    def _paint_dots(self, canvas: Any, center: np.ndarray, colors: np.ndarray) -> None:
        w, h = self.size
        x = np.floor(center[:, 0]).astype(np.int64)
        y = np.floor(center[:, 1]).astype(np.int64)
        pixels = pygame.surfarray.pixels3d(canvas)
        try:
            for dx in (0, 1):
                for dy in (0, 1):
                    xx, yy = x + dx, y + dy
                    ok = (xx >= 0) & (xx < w) & (yy >= HEADER) & (yy < h)
                    pixels[xx[ok], yy[ok]] = colors[ok]
        finally:
            del pixels

    def _paint_signals(self, canvas: Any, snapshot: TrafficState) -> None:
        if not len(self.bar_link):
            return
        codes = snapshot.link_state[0][self.bar_link]
        polygon = pygame.draw.polygon
        for quad, color in zip(self.bar_quads, LINK_PALETTE[codes].tolist(), strict=True):
            polygon(canvas, color, quad)

    def _header(self, canvas: Any, snapshot: TrafficState, info: Mapping[str, Any]) -> None:
        row = snapshot.metrics[0]

        def metric(name: str) -> float:
            value = info.get(name)
            return float(row[METRICS.index(name)] if value is None else value)

        self.text(canvas, format_clock(float(snapshot.time[0])), (12, 12), font=self.big)
        parts = (
            f"vehicles {metric('on_network'):.0f}",
            f"queue {metric('queue'):.0f}",
            f"travel time {metric('mean_travel_time'):.0f} s",
            f"speed {metric('mean_speed'):.1f} m/s",
            f"arrived {metric('arrived_total'):.0f}",
        )
        self.text(canvas, "   ".join(parts), (110, 16), color=INK)
