"""GeoVLM-R1's task families asked about drawn scenes: one function per ``task`` of the recipe's
``grpo_defaults.rewards.by_task`` (recipes/geovlm-r1.yaml), each returning a :class:`TaskSample`.

Training list, GRPO rows and eval files ask through the same functions, so their answers share one vocabulary:
class names, ``yes``/``no``, digits, object types listed in a fixed order, boxes on the 0-1000 grid (several per
answer where several objects are asked for) and templated captions. Bi-temporal tasks hold two images, before
then after (``changes``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinyrs.data.demo_world.changes import Change, draw_change
from tinyrs.data.demo_world.content import (
    BOX, CLOSED, HOST_CLASSES, MULTI_HOST_CLASSES, OPEN, PLURAL, Asker, ask_caption, ask_cls, ask_count,
    ask_presence, ask_rural_urban, listing, normalised_box, quantity,
)
from tinyrs.data.demo_world.scenes import HOSTS, OBJECT_TYPES, Scene

PAIR_QUESTION = "The first image was taken before the second."


@dataclass(frozen=True)
class TaskSample:
    task: str
    images: tuple[np.ndarray, ...]  # in the order the question refers to them
    question: str  # without <image> placeholders
    answer: str
    rationale: str
    answer_type: str  # GRPO's fallback route: OPEN, CLOSED or BOX


def boxes(scene: Scene, objects) -> str:
    """Several boxes as one answer, ``[[x1, y1, x2, y2], [...]]`` on the 0-1000 grid, left to right."""
    ordered = sorted(objects, key=lambda obj: obj.box)
    return "[" + ", ".join(normalised_box(scene, obj.box)[1:-1] for obj in ordered) + "]"


def classification(ask: Asker) -> TaskSample:
    scene, (qa,) = ask_cls(ask)
    return TaskSample("classification", (scene.image,), qa.question, qa.answer, "I look at the ground.", CLOSED)


def multilabel_classification(ask: Asker) -> TaskSample:
    """A scene holding one or more object types; the answer lists every type present."""
    rng = ask.rng
    scene_class = ask.pick(MULTI_HOST_CLASSES)
    hosted = HOSTS[scene_class]
    present = rng.sample(hosted, rng.randint(1, len(hosted)))
    scene = ask.draw(scene_class, {kind: (rng.randint(1, 3) if kind in present else 0) for kind in hosted})
    labels = [kind for kind in OBJECT_TYPES if kind in present]
    return TaskSample("multilabel_classification", (scene.image,),
                      "Which object types are present in the image? List all of them.", ", ".join(labels),
                      f"I find {listing([PLURAL[kind] for kind in labels])}.", CLOSED)


def referred_detection(ask: Asker) -> TaskSample:
    """Every object of one type, one to three of them: several boxes per answer."""
    rng = ask.rng
    scene_class = ask.pick(HOST_CLASSES)
    kind = rng.choice(HOSTS[scene_class])
    n = rng.randint(1, 3)
    scene = ask.draw(scene_class, ask.counts(scene_class) | {kind: n})
    return TaskSample("referred_detection", (scene.image,), f"Find every {kind} in the image and give its box.",
                      boxes(scene, scene.of_kind(kind)), f"I find {quantity(n, kind)}.", BOX)


def image_caption(ask: Asker) -> TaskSample:
    scene, (qa,) = ask_caption(ask)
    return TaskSample("image_caption", (scene.image,), qa.question, qa.answer, f"I see {scene.scene_class}.", OPEN)


def vqa(ask: Asker) -> TaskSample:
    """Short answers: presence (yes/no), counts (a digit), rural or urban."""
    asked = ask.pick((ask_presence, ask_count, ask_rural_urban))
    scene, (qa,) = asked(ask)
    return TaskSample("vqa", (scene.image,), qa.question, qa.answer, "I look at the image.", CLOSED)


def _change(ask: Asker, damaged: int, events: tuple[str, ...]) -> Change:
    """A host scene with 1-3 objects of each of one or two kinds, then ``damaged`` of them charred and the
    events (``appear``, ``disappear``) applied."""
    rng = ask.rng
    scene_class = rng.choice(HOST_CLASSES)
    hosted = HOSTS[scene_class]
    kinds = rng.sample(hosted, min(len(hosted), rng.randint(1, 2)))
    counts = {kind: rng.randint(1, 3) for kind in kinds}
    total = sum(counts.values())
    damaged = min(damaged, total)
    gone = rng.randint(1, total - damaged) if "disappear" in events and total > damaged else 0
    new = {rng.choice(hosted): rng.randint(1, 2)} if "appear" in events else {}
    return draw_change(scene_class, counts, gone, damaged, new, np.random.default_rng(rng.getrandbits(64)))


def damage_detection(ask: Asker) -> TaskSample:
    change = _change(ask, ask.rng.randint(1, 2), ask.pick(((), ("appear",), ("disappear",))))
    n = len(change.damaged)
    return TaskSample("damage_detection", (change.before.image, change.after.image),
                      f"{PAIR_QUESTION} Which objects were damaged? Give their boxes.",
                      boxes(change.after, change.damaged), f"{n} object{'s' if n > 1 else ''} turned black.", BOX)


def _counted(objects) -> list[str]:
    return [quantity(sum(obj.kind == kind for obj in objects), kind)
            for kind in OBJECT_TYPES if any(obj.kind == kind for obj in objects)]


def change_words(change: Change) -> str:
    """``2 ships appeared and 1 vehicle was damaged.``, or ``Nothing changed.``"""
    parts = []
    for verb, objects in (("appeared", change.appeared), ("disappeared", change.disappeared),
                          ("damaged", change.damaged)):
        if objects:
            be = ("was " if len(objects) == 1 else "were ") if verb == "damaged" else ""
            parts.append(f"{listing(_counted(objects))} {be}{verb}")
    return listing(parts) + "." if parts else "Nothing changed."


def change_caption(ask: Asker) -> TaskSample:
    events = ask.pick(((), ("appear",), ("disappear",), ("appear", "disappear"), ("damage",)))
    change = _change(ask, 1 if "damage" in events else 0, tuple(event for event in events if event != "damage"))
    text = change_words(change)
    return TaskSample("change_caption", (change.before.image, change.after.image),
                      f"{PAIR_QUESTION} Describe what changed.", text, "I compare the two images.", OPEN)


TASKS: dict[str, Callable[[Asker], TaskSample]] = {
    function.__name__: function for function in (
        classification, multilabel_classification, referred_detection, damage_detection, image_caption, vqa,
        change_caption)
}


def ask_task(ask: Asker, task: str) -> TaskSample:
    """One sample of ``task``; advances the asker's index (balanced eval answers)."""
    try:
        return TASKS[task](ask)
    finally:
        ask.index += 1
