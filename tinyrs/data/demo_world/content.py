"""Questions, answers, captions and rationales about drawn scenes.

A *kind* (``cls``, ``presence``, ``count``, ``comp``, ``rural_urban``, ``vg``, ``mc``, ``caption``,
``multi``) is a function that chooses a scene class and object counts suited to its question, has the
scene drawn, and returns it with one or more :class:`QA`. Training lists and eval files ask through
the same functions, so their answer vocabularies are identical by construction: class names in lower
case, ``yes``/``no``, digits, ``rural``/``urban``, option letters and ``[[x1, y1, x2, y2]]`` boxes
on the 0-1000 grid.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tinyrs.answers import BOX_SCALE, LHRS_TYPES, format_box
from tinyrs.data.demo_world.plan import VG_ORIGINAL_SIZE, VG_TARGET_SCALES
from tinyrs.data.demo_world.scenes import (
    HOSTS, MAX_COUNT, OBJECT_TYPES, SCENE_CLASSES, DrawnObject, Scene, draw_scene,
)

CLS_PREFIX, VQA_PREFIX, VG_PREFIX = "{CLS}", "{VQA}", "{VG}"
OPEN, CLOSED, BOX = "0", "1", "2"  # GRPO answer types

CLS_QUESTION = "What is the category of this remote sensing image? Answer with one word."
RURAL_URBAN_QUESTION = "Is this a rural or an urban area?"
CAPTION_QUESTION = "Describe this image."
MC_SUFFIX = "Answer with the option's letter."

URBAN = frozenset({"airport", "harbor", "industrial", "parking", "residential"})
HOST_CLASSES = tuple(HOSTS)
MULTI_HOST_CLASSES = tuple(cls for cls, kinds in HOSTS.items() if len(kinds) > 1)

# what each scene looks like, in words: captions and rationales
TRAITS = {
    "airport": "grey tarmac beside a dark runway with white stripes",
    "beach": "pale sand meeting turquoise water along a white surf line",
    "desert": "orange sand shaped into curved dunes",
    "farmland": "brown and yellow rectangular fields with parallel furrows",
    "forest": "dark green, blobby tree canopy with black gaps",
    "glacier": "bright white ice crossed by thin blue-grey crevasses",
    "harbor": "deep blue water beside grey concrete quays and piers",
    "industrial": "long blue-grey warehouse roofs next to a dusty yard",
    "meadow": "smooth light green grass",
    "parking": "dark asphalt painted with rows of white lines",
    "residential": "a grid of grey streets lined with small red and orange roofs",
    "water": "deep blue water with fine ripples",
}
PLACE = {
    "airport": "an airport", "beach": "a beach", "desert": "a desert", "farmland": "farmland",
    "forest": "a forest", "glacier": "a glacier", "harbor": "a harbor", "industrial": "an industrial area",
    "meadow": "a meadow", "parking": "a parking lot", "residential": "a residential area", "water": "open water",
}
MAIN_COLOUR = {
    "airport": "grey", "beach": "yellow", "desert": "orange", "farmland": "brown", "forest": "green",
    "glacier": "white", "harbor": "blue", "industrial": "grey", "meadow": "green", "parking": "black",
    "residential": "red", "water": "blue",
}
PLURAL = {"plane": "planes", "ship": "ships", "storage tank": "storage tanks", "vehicle": "vehicles"}
LOOKS = {  # (one, several)
    "plane": ("white cross-shaped plane", "white cross-shaped planes"),
    "ship": ("red hull with a white deck", "red hulls with white decks"),
    "storage tank": ("round cyan tank with a dark rim", "round cyan tanks with dark rims"),
    "vehicle": ("small yellow rectangle", "small yellow rectangles"),
}
# LHRS-Bench question types: the benchmark's table (tinyrs.answers.LHRS_TYPES, also the eval's), looked up
# by name so that a demo question's ids mean what the eval's per-type columns say. Kinds -> types:
# scene, object, land use, presence -> identity; colour -> color; quantity, most numerous -> quantity;
# largest object -> area; location -> location; orientation -> orientation; scene from objects -> identity
# + reasoning. The demo asks nothing of shape, distance, resolution or modality.
LHRS_TYPE_IDS = {name: type_id for type_id, name in LHRS_TYPES.items()}


def lhrs_types(*names: str) -> tuple[int, ...]:
    """The type ids of LHRS-Bench type names (a name outside the table is a KeyError)."""
    return tuple(LHRS_TYPE_IDS[name] for name in names)


@dataclass(frozen=True)
class QA:
    kind: str
    prefix: str  # VHM task prefix, "" for captions
    question: str  # without prefix and without <image>
    answer: str
    rationale: str  # short visual rationale for the reasoning list
    answer_type: str  # GRPO: OPEN, CLOSED or BOX
    lhrs_types: tuple[int, ...] = ()
    pixel_answer: str | None = None  # grounding: the box in pixels of original_size, as DIOR-RSVG's test file has it
    original_size: tuple[int, int] | None = None  # grounding: (width, height) the eval image is stored at


Asked = tuple[Scene, list[QA]]


class Asker:
    """Random choices and scene drawing for one list.

    ``balanced`` makes the answer-deciding choice cycle through its options with the sample index
    (eval files: exactly balanced answers); otherwise it is drawn at random (training lists).
    """

    def __init__(self, rng: random.Random, balanced: bool = False):
        self.rng = rng
        self.balanced = balanced
        self.index = 0

    def pick(self, options: Sequence):
        if self.balanced:
            return options[self.index % len(options)]
        return self.rng.choice(options)

    def counts(self, scene_class: str) -> dict[str, int]:
        return {kind: self.rng.randint(0, MAX_COUNT) for kind in HOSTS.get(scene_class, ())}

    def draw(self, scene_class: str, counts: dict[str, int], scales: dict[str, float] | None = None) -> Scene:
        return draw_scene(scene_class, counts, np.random.default_rng(self.rng.getrandbits(64)), scales)


# --- words --------------------------------------------------------------------------------------

def quantity(n: int, kind: str) -> str:
    return f"{n} {kind if n == 1 else PLURAL[kind]}"


def listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def where(scene: Scene, obj: DrawnObject) -> str:
    (width, height), (cx, cy) = scene.size, obj.centre
    horizontal = "left" if cx < width / 3 else "right" if cx > 2 * width / 3 else "centre"
    vertical = "top" if cy < height / 3 else "bottom" if cy > 2 * height / 3 else "middle"
    return "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}"


def normalised_box(scene: Scene, box: tuple[int, int, int, int]) -> str:
    width, height = scene.size
    return format_box((round(box[0] / width * BOX_SCALE), round(box[1] / height * BOX_SCALE),
                       round(box[2] / width * BOX_SCALE), round(box[3] / height * BOX_SCALE)))


def seen(scene: Scene) -> str:
    return f"I see {TRAITS[scene.scene_class]}"


def objects_sentence(scene: Scene, rng: random.Random) -> str:
    present = [quantity(scene.count(kind), kind) for kind in OBJECT_TYPES if scene.count(kind)]
    if not present:
        return rng.choice(["No planes, ships, storage tanks or vehicles are visible.",
                           "There are no planes, ships, storage tanks or vehicles in it."])
    verb = "is" if len(present) == 1 and present[0].startswith("1 ") else "are"
    return rng.choice([f"There {verb} {listing(present)}.", f"It contains {listing(present)}.",
                       f"Visible objects: {listing(present)}."])


CAPTION_TEMPLATES = (
    "An aerial view of {place}, with {traits}. {objects}",
    "This remote sensing image shows {place}: {traits}. {objects}",
    "Overhead image of {place}. The ground shows {traits}. {objects}",
    "A {cls} scene seen from above, showing {traits}. {objects}",
    "Satellite image of {place} with {traits}. {objects}",
)


def caption(scene: Scene, rng: random.Random) -> str:
    cls = scene.scene_class
    return rng.choice(CAPTION_TEMPLATES).format(
        place=PLACE[cls], traits=TRAITS[cls], cls=cls, objects=objects_sentence(scene, rng))


# --- questions about a drawn scene ------------------------------------------------------------

def cls_qa(scene: Scene) -> QA:
    cls = scene.scene_class
    return QA("cls", CLS_PREFIX, CLS_QUESTION, cls,
              f"{seen(scene)}. That texture and colour mark {PLACE[cls]}.", CLOSED)


def presence_qa(scene: Scene, kind: str, rng: random.Random) -> QA:
    question = rng.choice([f"Is there a {kind} in the image?", f"Are there any {PLURAL[kind]}?",
                           f"Is a {kind} present in the image?"])
    n = scene.count(kind)
    found = str(n) if n else f"none in this {scene.scene_class} scene"
    rationale = f"I look for {LOOKS[kind][1]} and find {found}."
    return QA("presence", VQA_PREFIX, question, "yes" if n else "no", rationale, CLOSED)


def count_qa(scene: Scene, kind: str, rng: random.Random) -> QA:
    question = rng.choice([f"How many {PLURAL[kind]} are there?", f"How many {PLURAL[kind]} are in the image?",
                           f"What is the number of {PLURAL[kind]} in the image?"])
    n = scene.count(kind)
    rationale = f"I count the {LOOKS[kind][1]} one by one: {'there is 1' if n == 1 else f'there are {n}'}."
    return QA("count", VQA_PREFIX, question, str(n), rationale, CLOSED)


def comp_qa(scene: Scene, first: str, second: str, rng: random.Random) -> QA:
    a, b = PLURAL[first], PLURAL[second]
    question = rng.choice([f"Are there more {a} than {b}?",
                           f"Is the number of {a} greater than the number of {b}?"])
    na, nb = scene.count(first), scene.count(second)
    relation = "more than" if na > nb else "not more than"
    rationale = f"I count {quantity(na, first)} and {quantity(nb, second)}; {na} is {relation} {nb}."
    return QA("comp", VQA_PREFIX, question, "yes" if na > nb else "no", rationale, CLOSED)


def rural_urban_qa(scene: Scene) -> QA:
    cls = scene.scene_class
    answer = "urban" if cls in URBAN else "rural"
    rationale = f"{seen(scene)}, so this is {PLACE[cls]}, which is {answer} land."
    return QA("rural_urban", VQA_PREFIX, RURAL_URBAN_QUESTION, answer, rationale, CLOSED)


def vg_qa(scene: Scene, kind: str, rng: random.Random) -> QA:
    (target,) = scene.of_kind(kind)
    question = rng.choice([f"Where is the {kind}?", f"Locate the {kind} in the image."])
    x1, y1, x2, y2 = target.box
    rationale = (f"The only {LOOKS[kind][0]} lies in the {where(scene, target)} of the image, "
                 f"about {x2 - x1} by {y2 - y1} pixels.")
    width, height = scene.size
    original = VG_ORIGINAL_SIZE
    pixels = (round(x1 * original[0] / width), round(y1 * original[1] / height),
              round(x2 * original[0] / width), round(y2 * original[1] / height))
    return QA("vg", VG_PREFIX, question, normalised_box(scene, target.box), rationale, BOX,
              pixel_answer=format_box(pixels), original_size=original)


def caption_qa(scene: Scene, rng: random.Random) -> QA:
    text = caption(scene, rng)
    return QA("caption", "", CAPTION_QUESTION, text, text, OPEN)


# --- kinds: choose a scene suited to the question, draw it, ask ---------------------------------

def ask_cls(ask: Asker, labels: Sequence[str] = SCENE_CLASSES) -> Asked:
    scene_class = ask.pick(labels)
    scene = ask.draw(scene_class, ask.counts(scene_class))
    return scene, [cls_qa(scene)]


def presence_scene(ask: Asker) -> tuple[Scene, str]:
    """A scene and an object type that is present in it or not, half and half."""
    rng = ask.rng
    if ask.pick(["yes", "no"]) == "yes":
        scene_class = rng.choice(HOST_CLASSES)
        kind = rng.choice(HOSTS[scene_class])
        counts = ask.counts(scene_class) | {kind: rng.randint(1, MAX_COUNT)}
    else:
        scene_class, kind = rng.choice(SCENE_CLASSES), rng.choice(OBJECT_TYPES)
        counts = ask.counts(scene_class) | ({kind: 0} if kind in HOSTS.get(scene_class, ()) else {})
    return ask.draw(scene_class, counts), kind


def count_scene(ask: Asker) -> tuple[Scene, str]:
    """A scene and an object type it holds 0..MAX_COUNT of, each count equally likely."""
    scene_class = ask.rng.choice(HOST_CLASSES)
    kind = ask.rng.choice(HOSTS[scene_class])
    return ask.draw(scene_class, ask.counts(scene_class) | {kind: ask.pick(range(MAX_COUNT + 1))}), kind


def ask_presence(ask: Asker) -> Asked:
    scene, kind = presence_scene(ask)
    return scene, [presence_qa(scene, kind, ask.rng)]


def ask_count(ask: Asker) -> Asked:
    scene, kind = count_scene(ask)
    return scene, [count_qa(scene, kind, ask.rng)]


def ask_comp(ask: Asker) -> Asked:
    """Mostly two types a scene can hold; sometimes one it holds against one it cannot (count 0)."""
    rng = ask.rng
    want_more = ask.pick([True, False])
    if rng.random() < 0.75:
        scene_class = rng.choice(MULTI_HOST_CLASSES)
        first, second = rng.sample(HOSTS[scene_class], 2)
    else:
        scene_class = rng.choice(HOST_CLASSES)
        hosted = rng.choice(HOSTS[scene_class])
        absent = rng.choice([kind for kind in OBJECT_TYPES if kind not in HOSTS[scene_class]])
        first, second = (hosted, absent) if want_more or rng.random() < 0.5 else (absent, hosted)
    hosted = HOSTS[scene_class]
    options = [(na, nb)
               for na in (range(MAX_COUNT + 1) if first in hosted else [0])
               for nb in (range(MAX_COUNT + 1) if second in hosted else [0])
               if (na > nb) == want_more]
    na, nb = rng.choice(options)
    counts = ask.counts(scene_class) | {kind: n for kind, n in ((first, na), (second, nb)) if kind in hosted}
    scene = ask.draw(scene_class, counts)
    return scene, [comp_qa(scene, first, second, rng)]


def ask_rural_urban(ask: Asker) -> Asked:
    urban = ask.pick([False, True])
    scene_class = ask.rng.choice([cls for cls in SCENE_CLASSES if (cls in URBAN) == urban])
    scene = ask.draw(scene_class, ask.counts(scene_class))
    return scene, [rural_urban_qa(scene)]


def ask_vg(ask: Asker, target_scales: Sequence[float] = VG_TARGET_SCALES) -> Asked:
    """Grounding needs an unambiguous target: exactly one object of the asked type, drawn at one of
    ``target_scales`` times its sprite's size."""
    rng = ask.rng
    scene_class = ask.pick(HOST_CLASSES)
    kind = rng.choice(HOSTS[scene_class])
    scale = ask.pick(target_scales)
    scene = ask.draw(scene_class, ask.counts(scene_class) | {kind: 1}, scales={kind: scale})
    return scene, [vg_qa(scene, kind, rng)]


def ask_caption(ask: Asker) -> Asked:
    scene_class = ask.pick(SCENE_CLASSES)
    scene = ask.draw(scene_class, ask.counts(scene_class))
    return scene, [caption_qa(scene, ask.rng)]


def ask_multi(ask: Asker) -> Asked:
    """Two turns on one image: presence, then how many."""
    scene, kind = presence_scene(ask)
    return scene, [presence_qa(scene, kind, ask.rng), count_qa(scene, kind, ask.rng)]


# --- multiple choice (LHRS-Bench style) ---------------------------------------------------------

def choice_qa(question: str, options: list[str], answer: str, rationale: str, types: tuple[int, ...]) -> QA:
    letters = string.ascii_uppercase[:len(options)]
    letter = letters[options.index(answer)]
    listed = " ".join(f"{lt}. {opt}" for lt, opt in zip(letters, options))
    return QA("mc", VQA_PREFIX, f"{question} {listed} {MC_SUFFIX}", letter,
              f"{rationale} That is option {letter}.", CLOSED, types)


def shuffled_options(rng: random.Random, answer: str, pool: Sequence[str], n: int = 4) -> list[str]:
    options = [answer, *rng.sample([o for o in pool if o != answer], n - 1)]
    rng.shuffle(options)
    return options


def mc_scene(ask: Asker) -> Asked:
    scene, _ = ask_cls(ask)
    cls = scene.scene_class
    return scene, [choice_qa("What type of scene is shown in the image?",
                             shuffled_options(ask.rng, cls, SCENE_CLASSES), cls,
                             f"{seen(scene)}, the look of {PLACE[cls]}.", lhrs_types("identity"))]


def mc_object(ask: Asker) -> Asked:
    rng = ask.rng
    scene_class = rng.choice(HOST_CLASSES)
    kind = rng.choice(HOSTS[scene_class])
    scene = ask.draw(scene_class, {k: 0 for k in HOSTS[scene_class]} | {kind: rng.randint(1, MAX_COUNT)})
    options = list(OBJECT_TYPES)
    rng.shuffle(options)
    return scene, [choice_qa("Which kind of object can be seen in the image?", options, kind,
                             f"The only objects are {LOOKS[kind][1]}, which are {PLURAL[kind]}.",
                             lhrs_types("identity"))]


def mc_colour(ask: Asker) -> Asked:
    scene, _ = ask_cls(ask)
    colour = MAIN_COLOUR[scene.scene_class]
    return scene, [choice_qa("What is the main colour of the image?",
                             shuffled_options(ask.rng, colour, sorted(set(MAIN_COLOUR.values()))), colour,
                             f"{seen(scene)}; most of it is {colour}.", lhrs_types("color"))]


def mc_quantity(ask: Asker) -> Asked:
    scene, kind = count_scene(ask)
    asked = count_qa(scene, kind, ask.rng)
    return scene, [choice_qa(f"How many {PLURAL[kind]} are in the image?",
                             shuffled_options(ask.rng, asked.answer, [str(i) for i in range(MAX_COUNT + 1)]),
                             asked.answer, asked.rationale, lhrs_types("quantity"))]


def _single(ask: Asker, kinds_of: Callable[[str], Sequence[str]], accept: Callable[[Scene, str], bool]):
    """Draw a host scene with exactly one object of a type; redraw until ``accept`` (bounded)."""
    rng = ask.rng
    scene_class = rng.choice([cls for cls in HOST_CLASSES if kinds_of(cls)])
    kind = rng.choice(kinds_of(scene_class))
    for _ in range(50):
        scene = ask.draw(scene_class, ask.counts(scene_class) | {kind: 1})
        if accept(scene, kind):
            return scene, kind
    raise RuntimeError(f"no acceptable {scene_class} scene with one {kind} in 50 draws")


def mc_location(ask: Asker) -> Asked:
    def clear_quadrant(scene: Scene, kind: str) -> bool:
        (obj,) = scene.of_kind(kind)
        return all(abs(c - s / 2) > 16 for c, s in zip(obj.centre, scene.size))

    scene, kind = _single(ask, lambda cls: HOSTS[cls], clear_quadrant)
    (obj,) = scene.of_kind(kind)
    (cx, cy), (width, height) = obj.centre, scene.size
    answer = f"{'top' if cy < height / 2 else 'bottom'} {'left' if cx < width / 2 else 'right'}"
    options = ["top left", "top right", "bottom left", "bottom right"]
    return scene, [choice_qa(f"In which part of the image is the {kind}?", options, answer,
                             f"The only {LOOKS[kind][0]} is in the {answer} quarter.", lhrs_types("location"))]


def mc_compare(ask: Asker) -> Asked:
    rng = ask.rng
    scene_class = rng.choice(MULTI_HOST_CLASSES)
    hosted = HOSTS[scene_class]
    winner = ask.pick(hosted)
    top = rng.randint(1, MAX_COUNT)
    counts = {kind: rng.randint(0, top - 1) for kind in hosted} | {winner: top}
    scene = ask.draw(scene_class, counts)
    options = list(OBJECT_TYPES)
    rng.shuffle(options)
    counted = listing([quantity(scene.count(k), k) for k in hosted])
    return scene, [choice_qa("Which kind of object is the most numerous in the image?", options, winner,
                             f"I count {counted}; the {PLURAL[winner]} are the most.", lhrs_types("quantity"))]


def mc_land_use(ask: Asker) -> Asked:
    scene, (asked,) = ask_rural_urban(ask)
    options = ["rural", "urban"]
    ask.rng.shuffle(options)
    return scene, [choice_qa("What kind of area is this?", options, asked.answer, asked.rationale,
                             lhrs_types("identity"))]


def mc_presence(ask: Asker) -> Asked:
    scene, kind = presence_scene(ask)
    asked = presence_qa(scene, kind, ask.rng)
    return scene, [choice_qa(f"Is there a {kind} in the image?", ["yes", "no"], asked.answer,
                             asked.rationale, lhrs_types("identity"))]


def mc_size(ask: Asker) -> Asked:
    rng = ask.rng
    scene_class = rng.choice(MULTI_HOST_CLASSES)
    hosted = HOSTS[scene_class]
    present = rng.sample(hosted, 2)
    counts = {kind: (rng.randint(1, 3) if kind in present else 0) for kind in hosted}
    for _ in range(50):
        scene = ask.draw(scene_class, counts)
        areas = sorted((obj.area, obj.kind) for obj in scene.objects)
        if len(areas) < 2 or areas[-1][0] > 1.3 * areas[-2][0]:  # a clear winner
            break
    else:
        raise RuntimeError(f"no {scene_class} scene with a clearly largest object in 50 draws")
    largest = areas[-1][1]
    options = list(OBJECT_TYPES)
    rng.shuffle(options)
    return scene, [choice_qa("Which object in the image is the largest?", options, largest,
                             f"Comparing the outlines, the biggest is a {LOOKS[largest][0]}.", lhrs_types("area"))]


def mc_orientation(ask: Asker) -> Asked:
    elongated = ("ship", "vehicle")
    scene, kind = _single(ask, lambda cls: [k for k in HOSTS[cls] if k in elongated], lambda s, k: True)
    (obj,) = scene.of_kind(kind)
    answer = "horizontal" if obj.horizontal else "vertical"
    x1, y1, x2, y2 = obj.box
    return scene, [choice_qa(f"How is the {kind} oriented?", ["horizontal", "vertical"], answer,
                             f"The {LOOKS[kind][0]} is {x2 - x1} pixels wide and {y2 - y1} tall.",
                             lhrs_types("orientation"))]


def mc_reasoning(ask: Asker) -> Asked:
    rng = ask.rng
    scene_class = ask.pick(HOST_CLASSES)
    kind = rng.choice(HOSTS[scene_class])
    scene = ask.draw(scene_class, ask.counts(scene_class) | {kind: rng.randint(1, MAX_COUNT)})
    rationale = f"I see {PLURAL[kind]} and {TRAITS[scene_class]}, so this is most likely {PLACE[scene_class]}."
    return scene, [choice_qa("Judging from the objects and the ground, what is this place most likely?",
                             shuffled_options(rng, scene_class, SCENE_CLASSES), scene_class, rationale,
                             lhrs_types("identity", "reasoning"))]


MC_KINDS = (mc_scene, mc_object, mc_colour, mc_quantity, mc_location, mc_compare, mc_land_use, mc_presence,
            mc_size, mc_orientation, mc_reasoning)


def ask_mc(ask: Asker) -> Asked:
    return ask.pick(MC_KINDS)(ask)


KINDS: dict[str, Callable[..., Asked]] = {
    "cls": ask_cls, "presence": ask_presence, "count": ask_count, "comp": ask_comp,
    "rural_urban": ask_rural_urban, "vg": ask_vg, "mc": ask_mc, "caption": ask_caption, "multi": ask_multi,
}


def ask_kind(ask: Asker, kind: str, labels: Sequence[str] | None = None) -> Asked:
    """Ask one sample of ``kind`` (``labels`` restricts the classes of ``cls``); advances the index."""
    try:
        if kind == "cls" and labels is not None:
            return ask_cls(ask, labels)
        return KINDS[kind](ask)
    finally:
        ask.index += 1
