"""Bi-temporal scene pairs: one ground, drawn once, seen before and after objects appeared, disappeared or were
damaged (the demo's stand-in for xBD damage pairs and change-caption pairs such as LEVIR-CC).

The after image starts from the same painted ground; kept and damaged objects are copied from the before image
at their boxes (the ground under them is identical), a damaged object's own pixels are charred, and new objects
are placed where nothing stood before. Everything comes from one ``numpy.random.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyrs.data.demo_world.scenes import SCENE_PAINTERS, DrawnObject, Region, Scene, check_counts, place_objects

GAP = 3  # px kept free around every standing object, as place_objects keeps between the objects it places
CHAR = np.float32([46, 36, 30])  # burnt: what a damaged object's pixels are pulled towards


@dataclass(frozen=True)
class Change:
    before: Scene
    after: Scene
    appeared: tuple[DrawnObject, ...]
    disappeared: tuple[DrawnObject, ...]
    damaged: tuple[DrawnObject, ...]  # boxes are the same in both images


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).round().astype(np.uint8)


def _without(regions: Region, objects, size: tuple[int, int]) -> Region:
    """``regions`` with every standing object's box (and GAP around it) taken out."""
    taken = np.zeros(size, bool)
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        taken[max(y1 - GAP, 0):y2 + GAP, max(x1 - GAP, 0):x2 + GAP] = True
    return {kind: mask & ~taken for kind, mask in regions.items()}


def draw_change(scene_class: str, counts: dict[str, int], gone: int, damaged: int, new: dict[str, int],
                rng: np.random.Generator) -> Change:
    """``counts`` objects before; then ``gone`` of them disappear, ``damaged`` others are charred and ``new``
    (kind -> count) appear. Which objects disappear or are damaged is drawn at random."""
    check_counts(scene_class, counts)
    check_counts(scene_class, new)
    painted, regions = SCENE_PAINTERS[scene_class](rng)
    ground = np.array(painted, dtype=np.float32)
    before = ground.copy()
    objects = place_objects(rng, before, regions, counts)
    if gone + damaged > len(objects):
        raise ValueError(f"{gone} gone + {damaged} damaged of only {len(objects)} objects")
    order = [objects[i] for i in rng.permutation(len(objects))]
    disappeared, harmed, kept = order[:gone], order[gone:gone + damaged], order[gone + damaged:]
    after = ground.copy()
    for obj in (*kept, *harmed):
        x1, y1, x2, y2 = obj.box
        after[y1:y2, x1:x2] = before[y1:y2, x1:x2]
    for obj in harmed:
        x1, y1, x2, y2 = obj.box
        patch = after[y1:y2, x1:x2]
        own = np.abs(before[y1:y2, x1:x2] - ground[y1:y2, x1:x2]).max(axis=-1) > 1
        soot = rng.normal(0.0, 12.0, patch.shape).astype(np.float32)
        patch[own] = (0.25 * patch + 0.75 * CHAR + soot)[own]
    appeared = place_objects(rng, after, _without(regions, (*kept, *harmed), ground.shape[:2]), new)
    return Change(Scene(scene_class, _uint8(before), objects),
                  Scene(scene_class, _uint8(after), (*kept, *harmed, *appeared)),
                  tuple(appeared), tuple(disappeared), tuple(harmed))
