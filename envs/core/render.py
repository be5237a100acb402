"""The pygame plumbing every family renderer shares: canvas, fonts, window, frames.

Family renderers subclass :class:`PygameView` and implement :meth:`PygameView.paint` only. This
module imports pygame at import time; it is itself imported lazily (through the family's
``render`` module, named by ``LeptonEnv.renderer``), so ``import envs`` never loads pygame.
Only ``pygame.display.init()`` is called, and only in ``human`` mode, so ``rgb_array`` rendering
works headless (e.g. ``SDL_VIDEODRIVER=dummy``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import pygame

RENDER_MODES = ("human", "rgb_array")

BACKGROUND = (246, 246, 242)
INK = (40, 40, 48)
MUTED = (120, 120, 128)

Color = tuple[int, int, int]


class PygameView(ABC):
    """Draws one replica's snapshot to an off-screen canvas; shows it or returns the pixels.

    Args:
        structure: the environment's structure scenario (fixes the layout).
        render_mode: ``"human"`` (a window ticking at ``fps``) or ``"rgb_array"``.
        fps: frames per second in ``human`` mode.
        size: canvas size ``(width, height)`` in pixels.
        caption: window title in ``human`` mode.
    """

    def __init__(
        self,
        structure: Any,
        render_mode: str,
        fps: int,
        *,
        size: tuple[int, int] = (800, 450),
        caption: str = "Lepton Gym",
    ) -> None:
        if render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode: {render_mode!r} is not supported; allowed: {list(RENDER_MODES)}"
            )
        self.structure = structure
        self.render_mode = render_mode
        self.fps = int(fps)
        self.size = size
        self.caption = caption
        self.window: Any = None
        self.clock: Any = None
        self.surface: Any = None
        pygame.font.init()
        self.font = pygame.font.Font(None, 20)
        self.small = pygame.font.Font(None, 16)
        self.big = pygame.font.Font(None, 26)

    @abstractmethod
    def paint(self, canvas: Any, snapshot: Any, info: Mapping[str, Any]) -> None:
        """Draw replica 0 of ``snapshot`` on ``canvas`` (already cleared to the background)."""

    def draw(self, snapshot: Any, info: Mapping[str, Any]) -> np.ndarray | None:
        """Draw replica 0 of ``snapshot``; return the frame in ``rgb_array`` mode.

        Args:
            snapshot: state with a batch axis of one.
            info: the last step's ``info``, possibly empty.

        Returns:
            An ``(H, W, 3)`` uint8 array in ``rgb_array`` mode, ``None`` in ``human`` mode.
        """
        if self.surface is None:
            self.surface = pygame.Surface(self.size)
        canvas = self.surface
        canvas.fill(BACKGROUND)
        self.paint(canvas, snapshot, info)
        if self.render_mode == "human":
            # pygame has one display: another view's close() may have shut it since last frame
            if self.window is None or pygame.display.get_surface() is None:
                pygame.display.init()
                pygame.display.set_caption(self.caption)
                self.window = pygame.display.set_mode(self.size)
                self.clock = pygame.time.Clock()
            self.window.blit(canvas, (0, 0))
            pygame.event.pump()
            pygame.display.flip()
            self.clock.tick(self.fps)
            return None
        # one byte copy out of the surface (a transposed pixels3d view costs several times more)
        w, h = canvas.get_size()
        raw = pygame.image.tobytes(canvas, "RGB")
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()

    def close(self) -> None:
        """Close the window (if any); safe to call more than once."""
        if self.window is not None:
            pygame.display.quit()
            self.window = None
            self.clock = None
        self.surface = None

    def text(
        self,
        canvas: Any,
        text: str,
        pos: tuple[float, float],
        *,
        color: Color = INK,
        font: Any = None,
        anchor: str = "topleft",
    ) -> None:
        """Blit ``text`` with its ``anchor`` point (a pygame ``Rect`` attribute) at ``pos``."""
        image = (font or self.font).render(text, True, color)
        rect = image.get_rect(**{anchor: (int(pos[0]), int(pos[1]))})
        canvas.blit(image, rect)
