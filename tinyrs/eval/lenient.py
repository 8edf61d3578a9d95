"""The reference evaluator's scoring, reproduced rule for rule as the reference-compatible ("lenient") column.

The strict scores (``scoring.py``, ``metrics/``) are the real ones. This column exists only so our numbers can be set beside
published ones, so it must give the reference evaluator's verdict on every prediction, quirks included
(REFERENCE.md §9; the quirks are defects §3.4 and §3.5). Written from those rules, not from the reference's code.
``tests/test_eval_reference.py`` holds the hand-derived outcome of every rule and branch below.

Every task
  R1. The prediction is ``str(pred)``: a JSON ``null`` becomes the text ``None`` (and is scored as that text).
  R2. Reasoning split, exactly ``p.split("<reasoning>")[1].split("</reasoning>")[1]``: when ``<reasoning>`` occurs,
      take the segment between the first ``<reasoning>`` and the second one (or the end); if that segment holds a
      ``</reasoning>``, the text becomes what lies between its first ``</reasoning>`` and its second one (or the
      segment's end); if it holds none (unclosed, or a nested ``<reasoning>`` before the first close), the text
      is left whole. So ``<reasoning>a</reasoning><reasoning>b</reasoning><answer>x</answer>`` gives the empty
      text between the first ``</reasoning>`` and the second ``<reasoning>``; ``<answer>x</answer><reasoning>r
      </reasoning>`` (reasoning after the answer) leaves only what follows ``</reasoning>``, here nothing; and
      ``<reasoning>a<reasoning>b</reasoning>...`` (nested) keeps the whole text, since the first segment is ``a``.
  R3. Answer split, exactly ``p.split("<answer>")[1].split("</answer>")[0]`` on the text left by R2: when
      ``<answer>`` occurs, the text between the first ``<answer>`` and the next ``<answer>`` or ``</answer>``
      (or the end: an unclosed answer runs to the end). Text after ``</answer>`` is dropped.
  The tags are the chat settings' (``reasoning`` / ``answer`` by default, the reference's literal ones).

Classification and VQA (``reference_closed_match``)
  C1. Remove every space character (U+0020 only) from the text and from the ground truth.
  C2. If the text contains ``.``, keep what precedes the first ``.``; then if it contains ``,``, keep what
      precedes the first ``,``. The ground truth is not cut.
  C3. ``strip()`` (all Unicode whitespace at both ends) and ``lower()`` both.
  C4. Correct iff the text is a substring of the ground truth: the empty text is always correct, ``for`` is a
      correct answer to ``forest`` (§3.5).

LHRS-Bench (``reference_lhrs_match``)
  L1. No strip of the raw text. If the text contains ``.``, keep what precedes the first ``.``.
  L2. Remove spaces and ``.`` from the text and from the ground truth, lowercase both; no other whitespace
      is removed, so ``"B\\n"`` stays ``b\\n`` and is not a substring of ``b``.
  L3. Correct iff the text is a substring of the ground truth; every type id of the record gets that verdict
      (overall and per-type accuracy count the record once per column).

Grounding, DIOR-RSVG (``reference_grounding_pairs``)
  G1. The raw text is ``strip()``-ed before R2/R3 (this changes no outcome: a box match never begins or ends
      with whitespace).
  G2. Ground-truth boxes: every match of ``\\[(\\d+),\\s*(\\d+),\\s*(\\d+),\\s*(\\d+)\\]`` in the ground-truth
      answer (so the inner list of ``[[x1, y1, x2, y2]]``; no space before a comma, none after ``[`` or before
      ``]``). Numbers are read as floats: the same values for any realistic box, and no crash on 5000 digits.
  G3. Predicted boxes: every match of ``\\[\\[(\\d+)[,\\s]+(\\d+)[,\\s]+(\\d+)[,\\s]+(\\d+)\\]\\]`` in the extracted
      text: double brackets, unsigned integers only (a negative number or a decimal anywhere in a box means no
      match), separators any run of commas and whitespace (``[[120 40 300 200]]`` matches), corners as written
      (no reordering, no clipping).
  G4. Pairing: ground-truth and predicted boxes are zipped in order, extra ones of either side ignored. Each
      pair counts once in the denominator and once in its size bucket. A prediction with no matching box pairs
      with nothing and adds NOTHING to the denominator (§3.4), nor to any bucket.
  G5. The predicted box is scaled to pixels: x by ``w / 1000``, y by ``h / 1000``, computed as ``x * w / 1000``
      (one rounding; §9 does not fix the order, and ``x * (w / 1000)`` can differ in the last bit, which changes a
      verdict only when the IoU is 0.5 exactly).
      ``size`` is read as ``[w, h]`` like the strict column (the reference reads ``[h, w]``: defect §3.9; DIOR-RSVG
      images are all square, so it never matters there). A task whose ground truth is on the 0-1000 grid
      (``answer_boxes: normalized``, not a case the reference has) has its ground-truth box scaled the same way,
      so IoU and size bucket are still taken in pixels.
  G6. IoU: intersection ``[max x1, max y1, min x2, min y2]``; 0 when it is empty or degenerate (``x2 <= x1`` or
      ``y2 <= y1``), so a box written with reversed corners always scores 0; else intersection / (area_pred +
      area_gt - intersection) with areas ``(x2 - x1) * (y2 - y1)``.
  G7. Hit iff IoU >= 0.5.
  G8. Size bucket by the ground-truth area A in pixels: small iff A <= 32², medium iff A <= 96², else large
      (an area of exactly 32² is small and exactly 96² medium; the strict column puts them one bucket up).
"""
from __future__ import annotations

import re
from typing import NamedTuple

REFERENCE_IOU_THRESHOLD = 0.5
# (bucket, inclusive upper bound on the ground-truth area in pixels)
REFERENCE_SIZE_BUCKETS = (("small", 32**2), ("medium", 96**2), ("large", float("inf")))
_REF_TRUTH_BOX = re.compile(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\]")
_REF_PRED_BOX = re.compile(r"\[\[(\d+)[,\s]+(\d+)[,\s]+(\d+)[,\s]+(\d+)\]\]")
_GRID = 1000


class ReferencePair(NamedTuple):
    """One ground-truth box paired with one predicted box: what it adds to the reference's counts."""

    iou: float
    hit: bool
    bucket: str


def reference_answer_text(pred, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> str:
    """Rules R1-R3: the text the reference scores."""
    text = str(pred)
    open_r, close_r = f"<{reasoning_tag}>", f"</{reasoning_tag}>"
    if open_r in text:
        segment = text.split(open_r)[1]          # first <reasoning> .. second <reasoning> or end
        pieces = segment.split(close_r)
        if len(pieces) > 1:                      # the reference's [1] raised (text kept whole) otherwise
            text = pieces[1]                     # first </reasoning> .. second </reasoning> or segment end
    open_a, close_a = f"<{answer_tag}>", f"</{answer_tag}>"
    if open_a in text:
        text = text.split(open_a)[1].split(close_a)[0]
    return text


def reference_closed_match(pred, answer, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> bool:
    """Rules C1-C4 (classification and VQA)."""
    text = reference_answer_text(pred, reasoning_tag, answer_tag).replace(" ", "")
    truth = str(answer).replace(" ", "")
    if "." in text:
        text = text.split(".")[0]
    if "," in text:
        text = text.split(",")[0]
    return text.strip().lower() in truth.strip().lower()


def reference_lhrs_match(pred, answer, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> bool:
    """Rules L1-L3 (LHRS-Bench)."""
    text = reference_answer_text(pred, reasoning_tag, answer_tag)
    if "." in text:
        text = text.split(".")[0]
    text = text.replace(" ", "").replace(".", "").lower()
    truth = str(answer).replace(" ", "").replace(".", "").lower()
    return text in truth


def reference_truth_boxes(answer) -> list[tuple[float, float, float, float]]:
    """Rule G2."""
    return [tuple(float(v) for v in match) for match in _REF_TRUTH_BOX.findall(str(answer))]


def reference_predicted_boxes(pred, reasoning_tag: str = "reasoning", answer_tag: str = "answer"):
    """Rules G1 and G3 (after R1-R3): the predicted boxes as written, on the 0-1000 grid."""
    text = reference_answer_text(str(pred).strip(), reasoning_tag, answer_tag)
    return [tuple(float(v) for v in match) for match in _REF_PRED_BOX.findall(text)]


def reference_iou(a, b) -> float:
    """Rule G6."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    if x2 <= x1 or y2 <= y1:
        return 0.0
    inter = (x2 - x1) * (y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def reference_size_bucket(area_px: float) -> str:
    """Rule G8 (upper bounds inclusive)."""
    return next(name for name, bound in REFERENCE_SIZE_BUCKETS if area_px <= bound)


def _to_pixels(box, width, height):
    return (box[0] * width / _GRID, box[1] * height / _GRID, box[2] * width / _GRID, box[3] * height / _GRID)


def reference_grounding_pairs(pred, answer, size, answer_boxes: str = "pixels", reasoning_tag: str = "reasoning",
                              answer_tag: str = "answer") -> list[ReferencePair]:
    """Rules G1-G8: what one prediction adds to the reference's counts, one entry per pair (often none).

    ``size`` is ``[width, height]``; ``answer_boxes`` says whether the ground truth is in pixels (DIOR-RSVG)
    or on the 0-1000 grid.
    """
    width, height = size
    truths = reference_truth_boxes(answer)
    if answer_boxes == "normalized":
        truths = [_to_pixels(box, width, height) for box in truths]
    pairs = []
    for truth, box in zip(truths, reference_predicted_boxes(pred, reasoning_tag, answer_tag)):
        overlap = reference_iou(_to_pixels(box, width, height), truth)
        area = (truth[2] - truth[0]) * (truth[3] - truth[1])
        pairs.append(ReferencePair(overlap, overlap >= REFERENCE_IOU_THRESHOLD, reference_size_bucket(area)))
    return pairs
