"""Draw a scene with Pillow: 64×64 RGB, white background, shapes at 4× then box-downsampled,
the printed word in Pillow's default bitmap font, and per-pixel noise (σ = 0.08·255).

Rendering is a pure function of the scene (its noise seed included), so training images can
be drawn on the fly instead of stored, and every build writes the same PNG bytes.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmbench.world.scenes import CELL, IMAGE_SIZE, Obj, Scene

SCALE = 4  # supersampling factor: smooth edges on 11-27 px shapes
NOISE_SIGMA = 0.08 * 255
RGB = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 195, 10),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}
TEXT_RGB = (20, 20, 20)


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    out = []
    for i in range(points * 2):
        radius = 1.0 if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / points
        out.append((radius * math.cos(angle), radius * math.sin(angle)))
    return out


def _heart(steps: int = 48) -> list[tuple[float, float]]:
    pts = []
    for i in range(steps):
        t = 2 * math.pi * i / steps
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17, -y / 17 + 0.1))
    return pts


# Shapes in unit coordinates ([-1, 1] each way, y down); circle and moon are drawn as ellipses.
POLYGONS = {
    "square": [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
    "triangle": [(0.0, -1.0), (1.0, 0.85), (-1.0, 0.85)],
    "diamond": [(0.0, -1.0), (0.68, 0.0), (0.0, 1.0), (-0.68, 0.0)],
    "cross": [
        (-0.3, -1),
        (0.3, -1),
        (0.3, -0.3),
        (1, -0.3),
        (1, 0.3),
        (0.3, 0.3),
        (0.3, 1),
        (-0.3, 1),
        (-0.3, 0.3),
        (-1, 0.3),
        (-1, -0.3),
        (-0.3, -0.3),
    ],
    "star": _star(),
    "heart": _heart(),
}


def _fill(obj: Obj) -> tuple[int, int, int]:
    """Hard objects keep only `alpha` of their colour against the white background."""
    r, g, b = RGB[obj.colour]
    a = obj.alpha
    return tuple(round(255 * (1 - a) + v * a) for v in (r, g, b))


def _draw_object(mask_draw: ImageDraw.ImageDraw, obj: Obj) -> None:
    # Coordinates inside the object's own cell (the mask covers one cell only: 4× cheaper).
    cx = (CELL / 2 + obj.dx) * SCALE
    cy = (CELL / 2 + obj.dy) * SCALE
    half = obj.px * SCALE / 2
    box = (cx - half, cy - half, cx + half, cy + half)
    if obj.kind == "circle":
        mask_draw.ellipse(box, fill=255)
    elif obj.kind == "moon":
        mask_draw.ellipse(box, fill=255)
        shift = 0.45 * half
        mask_draw.ellipse(
            (box[0] + shift, box[1] - shift * 0.3, box[2] + shift, box[3] - shift * 0.3), fill=0
        )
    else:
        mask_draw.polygon([(cx + x * half, cy + y * half) for x, y in POLYGONS[obj.kind]], fill=255)


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    # The bitmap font renders identically everywhere (no FreeType hinting differences).
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()


def render_scene(scene: Scene, *, noise: bool = True) -> Image.Image:
    big = Image.new("RGB", (IMAGE_SIZE * SCALE, IMAGE_SIZE * SCALE), (255, 255, 255))
    for obj in scene.objects:
        mask = Image.new("L", (CELL * SCALE, CELL * SCALE), 0)
        _draw_object(ImageDraw.Draw(mask), obj)
        corner = (obj.col * CELL * SCALE, obj.row * CELL * SCALE)
        big.paste(Image.new("RGB", mask.size, _fill(obj)), corner, mask)
    image = big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    if scene.word is not None and scene.word_cell is not None:
        draw = ImageDraw.Draw(image)
        font = _font()
        left, top, right, bottom = font.getbbox(scene.word)
        x0 = (scene.word_cell % 2) * CELL + (CELL - (right - left)) // 2
        y0 = (scene.word_cell // 2) * CELL + (CELL - (bottom - top)) // 2
        draw.text((x0 - left, y0 - top), scene.word, fill=TEXT_RGB, font=font)
    if noise:
        pixels = np.asarray(image, dtype=np.float64)
        rng = np.random.default_rng(scene.noise_seed)
        pixels = pixels + rng.normal(0.0, NOISE_SIGMA, pixels.shape)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    return image


def png_bytes(image: Image.Image) -> bytes:
    """PNG with fixed settings and no metadata chunks: the same image gives the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))
