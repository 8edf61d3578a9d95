"""Procedurally drawn overhead scenes with objects at known boxes.

Each scene class has its own colours *and* texture, so that a few-million-parameter model can tell
them apart after a few hundred steps at 224 px. Objects (plane, ship, storage tank, vehicle) have
distinct shapes and colours, are 12-50 px across (a grounding target up to 5 times that), and are
placed only where they belong (ships on water, planes on tarmac, ...), never overlapping. Everything is
drawn from one ``numpy.random.Generator``, so a scene is a pure function of its seed.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

IMAGE_SIZE = 224
JPEG_QUALITY = 90
OBJECT_TYPES = ("plane", "ship", "storage tank", "vehicle")
MAX_COUNT = 5

Region = dict[str, np.ndarray]  # object type -> boolean mask of where it may be placed


@dataclass(frozen=True)
class DrawnObject:
    kind: str
    box: tuple[int, int, int, int]  # pixel box (x1, y1, x2, y2), x2/y2 exclusive

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def horizontal(self) -> bool:
        """Long axis along x (square objects count as vertical)."""
        return self.box[2] - self.box[0] > self.box[3] - self.box[1]


@dataclass(frozen=True)
class Scene:
    scene_class: str
    image: np.ndarray  # uint8, H x W x 3
    objects: tuple[DrawnObject, ...]

    def count(self, kind: str) -> int:
        return sum(1 for obj in self.objects if obj.kind == kind)

    def of_kind(self, kind: str) -> list[DrawnObject]:
        return [obj for obj in self.objects if obj.kind == kind]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.image.shape[1], self.image.shape[0])


# --- texture helpers -------------------------------------------------------------------------

def smooth_noise(rng: np.random.Generator, cells: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Value noise in [0, 1]: a cells x cells random grid, bicubically upsampled."""
    grid = rng.random((cells, cells)).astype(np.float32)
    up = Image.fromarray(grid, mode="F").resize((size, size), Image.BICUBIC)
    return np.clip(np.asarray(up), 0.0, 1.0)


def jitter(rng: np.random.Generator, colour: tuple[int, int, int], spread: float = 6.0) -> np.ndarray:
    return np.asarray(colour, dtype=np.float32) + rng.normal(0.0, spread, 3).astype(np.float32)


def fill(colour: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    return np.broadcast_to(colour, (size, size, 3)).astype(np.float32)


# Fine per-pixel noise is cut from one fixed bank at random offsets: as random-looking as fresh
# noise for these scenes, and far cheaper than drawing 50k normals per image.
_GRAIN_BANK = np.random.default_rng(20240607).standard_normal((2 * IMAGE_SIZE, 2 * IMAGE_SIZE, 1), np.float32)


def grain(rng: np.random.Generator, amount: float, size: int = IMAGE_SIZE) -> np.ndarray:
    y, x = rng.integers(0, _GRAIN_BANK.shape[0] - size, 2)
    return amount * _GRAIN_BANK[y:y + size, x:x + size]


_YI, _XI = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.int32)
_YS, _XS = _YI.astype(np.float32), _XI.astype(np.float32)
for _coordinate_grid in (_YI, _XI, _YS, _XS):
    _coordinate_grid.flags.writeable = False


def coords() -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates as float32 (read-only)."""
    return _XS, _YS


def int_coords() -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates as int32, for modulo patterns (read-only)."""
    return _XI, _YI


def paint(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """``image`` with ``colour`` (one colour, or per-pixel colours) where ``mask`` is set."""
    return np.where(mask[..., None], np.asarray(colour, dtype=np.float32), image)


def ripples(rng: np.random.Generator, period: float, warp: float) -> np.ndarray:
    """Parallel waves in a random direction, warped by smooth noise; values in [-1, 1]."""
    xs, ys = coords()
    angle = rng.uniform(0, np.pi)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period)
    return np.sin(phase + warp * smooth_noise(rng, 5))


def erode(mask: np.ndarray, margin: int) -> np.ndarray:
    """Keep only pixels at least ``margin`` px inside ``mask``; the image border does not count as an edge."""
    out = mask.copy()
    for shift in range(1, margin + 1):
        out[shift:, :] &= mask[:-shift, :]
        out[:-shift, :] &= mask[shift:, :]
        out[:, shift:] &= mask[:, :-shift]
        out[:, :-shift] &= mask[:, shift:]
    return out


def shoreline(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Per row, the x of a gently wavy vertical edge between ``low`` and ``high`` of the width (column)."""
    return rng.uniform(low, high) * IMAGE_SIZE + 10 * (smooth_noise(rng, 4)[:, :1] - 0.5)


def turned(rng: np.random.Generator, image: np.ndarray, regions: Region) -> tuple[np.ndarray, Region]:
    """Rotate a scene painted in its canonical orientation by a random multiple of 90 degrees."""
    turns = int(rng.integers(4))
    return (np.ascontiguousarray(np.rot90(image, turns)),
            {kind: np.ascontiguousarray(np.rot90(mask, turns)) for kind, mask in regions.items()})


# --- scene painters: (rng) -> (float image, placement regions) -------------------------------

def paint_water(rng):
    image = fill(jitter(rng, (30, 70, 140))) + 9 * ripples(rng, 9, 6)[..., None] * [0.6, 0.8, 1.0]
    image += 8 * (smooth_noise(rng, 6)[..., None] - 0.5) + grain(rng, 2)
    return image, {"ship": np.ones((IMAGE_SIZE,) * 2, bool)}


def paint_forest(rng):
    canopy = smooth_noise(rng, 36)
    image = fill(jitter(rng, (30, 78, 34))) + (canopy[..., None] - 0.5) * [40, 70, 40]
    gaps = smooth_noise(rng, 30) < 0.22
    image = paint(image, gaps, jitter(rng, (14, 36, 18), 3))
    return image + grain(rng, 3), {}


def paint_meadow(rng):
    image = fill(jitter(rng, (128, 178, 72))) + 16 * (smooth_noise(rng, 5)[..., None] - 0.5)
    image += 10 * (smooth_noise(rng, 40)[..., None] - 0.5)  # grass tufts
    return image + grain(rng, 4), {}


def paint_farmland(rng):
    palette = [(196, 170, 78), (132, 90, 52), (162, 128, 84), (112, 122, 52)]  # wheat, ploughed, stubble, crop
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
    xs, ys = coords()
    cuts_x = np.sort(rng.integers(40, 184, int(rng.integers(1, 3))))
    cuts_y = np.sort(rng.integers(40, 184, int(rng.integers(1, 3))))
    bounds_x = [0, *cuts_x.tolist(), IMAGE_SIZE]
    bounds_y = [0, *cuts_y.tolist(), IMAGE_SIZE]
    for x0, x1 in zip(bounds_x, bounds_x[1:]):
        for y0, y1 in zip(bounds_y, bounds_y[1:]):
            colour = jitter(rng, palette[int(rng.integers(len(palette)))], 5)
            period = rng.uniform(4, 8)
            axis = xs if rng.random() < 0.5 else ys
            stripes = np.sin(axis[y0:y1, x0:x1] * 2 * np.pi / period)[..., None]
            image[y0:y1, x0:x1] = colour + 16 * stripes
    track = jitter(rng, (96, 80, 52), 3)
    for cut in cuts_x:
        image[:, cut - 1:cut + 1] = track
    for cut in cuts_y:
        image[cut - 1:cut + 1, :] = track
    return image + grain(rng, 3), {}


def paint_desert(rng):
    xs, ys = coords()
    angle = rng.uniform(0, np.pi)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) / rng.uniform(14, 22) + 5 * smooth_noise(rng, 4)
    dunes = (phase % 1.0) ** 2  # slow rise, sharp crest
    image = fill(jitter(rng, (214, 172, 112))) + (dunes[..., None] - 0.4) * [36, 32, 26]
    return image + grain(rng, 3), {}


def paint_glacier(rng):
    image = fill(jitter(rng, (228, 236, 247), 4)) + 10 * (smooth_noise(rng, 6)[..., None] - 0.5)
    crevasses = np.abs(ripples(rng, 28, 9)) < 0.1
    image = paint(image, crevasses, jitter(rng, (150, 176, 204), 4))
    return image + grain(rng, 2), {}


def paint_beach(rng):
    water = coords()[0] < shoreline(rng, 0.35, 0.6)
    sand = fill(jitter(rng, (230, 210, 164))) + grain(rng, 5)
    sea = fill(jitter(rng, (38, 140, 180))) + 8 * ripples(rng, 8, 5)[..., None]
    image = np.where(water[..., None], sea, sand)
    image = paint(image, water & ~erode(water, 3), jitter(rng, (245, 248, 250), 3))  # surf line
    return turned(rng, image, {"ship": erode(water, 6)})


def paint_harbor(rng):
    xs, ys = coords()
    edge = shoreline(rng, 0.38, 0.5)
    water = xs < edge
    piers = np.zeros_like(water)
    for start in rng.choice(np.arange(16, 190, 34), size=2, replace=False):
        piers |= (ys >= start) & (ys < start + int(rng.integers(8, 13))) & (xs >= edge - 44) & water
    land = ~water | piers
    concrete = fill(jitter(rng, (176, 171, 160))) + grain(rng, 4)
    sea = fill(jitter(rng, (30, 62, 118))) + 6 * ripples(rng, 10, 5)[..., None]
    image = np.where(land[..., None], concrete, sea)
    image = paint(image, land & ~erode(land, 2), jitter(rng, (120, 116, 108), 3))  # quay edge
    yard = erode(~water, 4)
    return turned(rng, image, {"ship": erode(~land, 4), "storage tank": yard, "vehicle": yard})


def paint_industrial(rng):
    """Warehouse roofs stacked along one side, an open yard (tanks, vehicles) on the other."""
    image = fill(jitter(rng, (142, 122, 96))) + 10 * (smooth_noise(rng, 8)[..., None] - 0.5) + grain(rng, 4)
    xs, ys = coords()
    band = int(rng.uniform(0.32, 0.45) * IMAGE_SIZE)
    roof = jitter(rng, (200, 208, 220), 3) + 7 * np.sin(xs * 2 * np.pi / 6)[..., None]  # ridged
    top = int(rng.integers(0, 12))
    while top < IMAGE_SIZE - 20:
        bottom = min(top + int(rng.integers(30, 64)), IMAGE_SIZE - 3)
        left, right = int(rng.integers(3, 12)), band - int(rng.integers(3, 12))
        image[top:bottom, left:right] = roof[top:bottom, left:right]
        top = bottom + int(rng.integers(6, 14))
    yard = erode(xs >= band + 3, 3)
    return turned(rng, image, {"storage tank": yard, "vehicle": yard})


def paint_residential(rng):
    image = fill(jitter(rng, (150, 150, 128))) + grain(rng, 4)
    xs, ys = int_coords()
    pitch, width = int(rng.integers(48, 60)), int(rng.integers(15, 18))
    offset_x, offset_y = rng.integers(0, pitch, 2)
    streets = ((xs + offset_x) % pitch < width) | ((ys + offset_y) % pitch < width)
    image = paint(image, streets, jitter(rng, (104, 104, 108), 3))
    roof_colours = [(178, 68, 50), (192, 108, 62), (140, 58, 44)]
    lot = (pitch - width) // 2  # each block holds 2 x 2 lots, houses never reach the street
    for y in range(-pitch, IMAGE_SIZE, pitch):
        for x in range(-pitch, IMAGE_SIZE, pitch):
            bx, by = x - offset_x + width + 3, y - offset_y + width + 3
            for cx, cy in ((bx, by), (bx + lot, by), (bx, by + lot), (bx + lot, by + lot)):
                size = int(rng.integers(lot - 8, lot - 3))
                tree = rng.random() < 0.15  # a garden tree instead of a house
                colour = (60, 110, 50) if tree else roof_colours[int(rng.integers(3))]
                image[max(cy, 0):max(cy + size, 0), max(cx, 0):max(cx + size, 0)] = jitter(rng, colour, 5)
    return image, {"vehicle": erode(streets, 1)}


def paint_parking(rng):
    image = fill(jitter(rng, (56, 56, 62), 4)) + grain(rng, 3)
    xs, ys = int_coords()
    bay = int(rng.integers(20, 26))
    image = paint(image, (xs % bay < 2) & (ys % 56 > 8) & (ys % 56 < 48), jitter(rng, (220, 220, 214), 3))
    return turned(rng, image, {"vehicle": np.ones((IMAGE_SIZE,) * 2, bool)})


def paint_airport(rng):
    xs, ys = int_coords()
    image = fill(jitter(rng, (104, 138, 82))) + grain(rng, 4)  # grass
    start, width = int(rng.integers(16, 40)), int(rng.integers(30, 38))
    runway = (ys >= start) & (ys < start + width)
    apron = ys >= start + width + int(rng.integers(10, 24))
    image = paint(image, apron, jitter(rng, (150, 150, 152), 3) + grain(rng, 3))
    image = paint(image, runway, jitter(rng, (70, 70, 76), 3))
    dashes = (np.abs(ys - (start + width // 2)) < 1.5) & ((xs // 10) % 2 == 0)
    thresholds = runway & ((xs < 18) | (xs > 205)) & (((ys - start) // 4) % 2 == 0)
    image = paint(image, dashes | thresholds, (235, 235, 235))
    return turned(rng, image, {"plane": erode(apron, 3), "vehicle": erode(apron, 3)})


SCENE_PAINTERS: dict[str, Callable] = {
    "airport": paint_airport,
    "beach": paint_beach,
    "desert": paint_desert,
    "farmland": paint_farmland,
    "forest": paint_forest,
    "glacier": paint_glacier,
    "harbor": paint_harbor,
    "industrial": paint_industrial,
    "meadow": paint_meadow,
    "parking": paint_parking,
    "residential": paint_residential,
    "water": paint_water,
}
SCENE_CLASSES = tuple(SCENE_PAINTERS)
# object types each scene class can hold; every other type is absent from it
HOSTS: dict[str, tuple[str, ...]] = {
    "airport": ("plane", "vehicle"),
    "beach": ("ship",),
    "harbor": ("ship", "storage tank", "vehicle"),
    "industrial": ("storage tank", "vehicle"),
    "parking": ("vehicle",),
    "residential": ("vehicle",),
    "water": ("ship",),
}


# --- object sprites: (rng) -> (mask, colours), long axis vertical -------------------------------------

def sprite_plane(rng):
    length = int(rng.integers(26, 42))
    body = max(3, length // 7)
    mask = np.zeros((length, length), bool)
    mid = length // 2
    mask[:, mid - body // 2: mid - body // 2 + body] = True  # fuselage, nose at the top
    wing_row = int(length * 0.34)
    mask[wing_row: wing_row + max(3, length // 6), 1:length - 1] = True
    mask[length - 4: length - 1, mid - length // 5: mid + length // 5] = True  # tail
    colours = np.broadcast_to(np.float32([236, 236, 240]), (length, length, 3)).copy()
    return mask, colours


def sprite_ship(rng):
    length, width = int(rng.integers(24, 46)), int(rng.integers(8, 13))
    rows = np.arange(length)[:, None]
    cols = np.arange(width)[None, :]
    half = (width / 2) * np.clip(rows / (0.3 * length), 0, 1) + 0.6  # pointed bow at row 0
    mask = np.abs(cols - (width - 1) / 2) <= half
    colours = np.broadcast_to(np.float32([196, 58, 40]), (length, width, 3)).copy()
    deck = slice(int(length * 0.5), int(length * 0.75))
    colours[deck, 2:width - 2] = (235, 235, 235)
    return mask, colours


def sprite_tank(rng):
    diameter = int(rng.integers(14, 30))
    centre = (diameter - 1) / 2
    rows, cols = np.mgrid[0:diameter, 0:diameter]
    radius = np.hypot(rows - centre, cols - centre)
    mask = radius <= diameter / 2
    colours = np.broadcast_to(np.float32([120, 200, 228]), (diameter, diameter, 3)).copy()
    colours[radius > diameter / 2 - 1.5] = (60, 90, 110)
    colours[radius < max(1.5, diameter / 8)] = (80, 140, 170)
    return mask, colours


def sprite_vehicle(rng):
    length, width = int(rng.integers(12, 18)), int(rng.integers(7, 10))
    mask = np.ones((length, width), bool)
    colours = np.broadcast_to(np.float32([244, 204, 36]), (length, width, 3)).copy()
    colours[2:4, 1:width - 1] = (40, 40, 52)  # windscreen at the front (top)
    return mask, colours


SPRITES = {"plane": sprite_plane, "ship": sprite_ship, "storage tank": sprite_tank, "vehicle": sprite_vehicle}
MAX_ENLARGED_SIDE = round(0.6 * IMAGE_SIZE)  # an enlarged sprite's longest side: its ground still shows around it
SHRINK = 0.85  # an enlarged sprite that finds no room shrinks by this every 4 tries, down to its natural size


def _oriented(rng, kind, scale: float = 1.0):
    """A sprite of ``kind``, ``scale`` times its natural size (an enlarged one at most ``MAX_ENLARGED_SIDE`` px
    long), turned by a random multiple of 90 degrees."""
    mask, colours = SPRITES[kind](rng)
    if scale > 1.0:
        scale = max(1.0, min(scale, MAX_ENLARGED_SIDE / max(mask.shape)))
    if scale != 1.0:
        size = (max(2, round(mask.shape[1] * scale)), max(2, round(mask.shape[0] * scale)))
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
        colours = np.asarray(Image.fromarray(colours.astype(np.uint8)).resize(size, Image.NEAREST), np.float32)
    turns = int(rng.integers(4))
    return np.rot90(mask, turns), np.rot90(colours, turns)


def summed_area(mask: np.ndarray) -> np.ndarray:
    return np.pad(mask.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))


def window_sums(table: np.ndarray, h: int, w: int) -> np.ndarray:
    """For every top-left corner (y, x), the number of set pixels in the h x w window there."""
    return table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]


def _attempt_scales(scale: float) -> list[float]:
    """The sprite scale of each try to place one object: ``scale`` 20 times, or for an enlarged one shrinking by
    ``SHRINK`` every 4 tries, for as many tries as it takes to come back to its natural size (and 8 more there)."""
    if scale <= 1:
        return [scale] * 20
    tries = max(20, 4 * (math.ceil(math.log(scale) / -math.log(SHRINK)) + 2))
    return [max(1.0, scale * SHRINK ** (attempt // 4)) for attempt in range(tries)]


def place_objects(rng, image, regions: Region, counts: dict[str, int], gap: int = 3,
                  scales: dict[str, float] | None = None):
    """Draw ``counts[kind]`` objects of each kind fully inside its region, ``gap`` px apart; ``scales[kind]``
    enlarges or shrinks that kind's sprites (shrinking further, try by try, where a large one finds no room)."""
    placed: list[DrawnObject] = []
    for kind in OBJECT_TYPES:
        if not counts.get(kind, 0):
            continue
        region = summed_area(regions[kind])
        scale = (scales or {}).get(kind, 1.0)
        for _ in range(counts[kind]):
            for attempt_scale in _attempt_scales(scale):  # a smaller or turned sprite may fit where this one does not
                mask, colours = _oriented(rng, kind, attempt_scale)
                h, w = mask.shape
                fits = window_sums(region, h, w) == h * w
                for obj in placed:  # corners whose window would come within `gap` of a placed object
                    x1, y1, x2, y2 = obj.box
                    fits[max(y1 - gap - h + 1, 0):y2 + gap, max(x1 - gap - w + 1, 0):x2 + gap] = False
                corners = np.flatnonzero(fits)
                if len(corners):
                    break
            else:
                raise RuntimeError(f"no room for {counts[kind]} x {kind} in this scene")
            y, x = divmod(int(corners[rng.integers(len(corners))]), fits.shape[1])
            patch = image[y:y + h, x:x + w]
            patch[mask] = colours[mask]
            ys, xs = np.nonzero(mask)
            placed.append(DrawnObject(kind, (x + int(xs.min()), y + int(ys.min()),
                                             x + int(xs.max()) + 1, y + int(ys.max()) + 1)))
    return tuple(placed)


def check_counts(scene_class: str, counts: dict[str, int]) -> None:
    """Object counts a ``scene_class`` scene can hold: only hosted kinds, each 0..MAX_COUNT."""
    hosted = HOSTS.get(scene_class, ())
    for kind, count in counts.items():
        if count and kind not in hosted:
            raise ValueError(f"a {scene_class} scene cannot hold a {kind}")
        if not 0 <= count <= MAX_COUNT:
            raise ValueError(f"{kind} count {count} outside 0..{MAX_COUNT}")


def draw_scene(scene_class: str, counts: dict[str, int], rng: np.random.Generator,
               scales: dict[str, float] | None = None) -> Scene:
    """Paint ``scene_class`` and put ``counts`` objects on it (``scales``: per kind, as ``place_objects``);
    kinds it cannot host must be 0."""
    check_counts(scene_class, counts)
    image, regions = SCENE_PAINTERS[scene_class](rng)
    image = np.array(image, dtype=np.float32)
    objects = place_objects(rng, image, regions, counts, scales=scales)
    return Scene(scene_class, np.clip(image, 0, 255).round().astype(np.uint8), objects)


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at (width, height) ``size``, bicubic: a 224 px scene stored at a real dataset's image size."""
    return np.asarray(Image.fromarray(image, mode="RGB").resize(size, Image.BICUBIC))


def encode_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
