"""Each reward against hand-computed values, and the reference's IoU defect (REFERENCE.md §3.1)."""
import inspect
import re

import pytest

from tinyrs.answers import canonical_box, iou, parse_completion
from tinyrs.grpo.rewards import REWARDS
from tinyrs.grpo.rewards.boxes import box_iou_reward, detection_f1_reward, detection_reward, truth_boxes
from tinyrs.grpo.rewards.closed import closed_reward, label_recall_reward
from tinyrs.grpo.rewards.format import format_reward
from tinyrs.grpo.rewards.text import (
    jaccard_reward,
    jaccard_similarity,
    lcs_length,
    levenshtein_ratio,
    levenshtein_reward,
    lmgr_reward,
)
from tinyrs.io import DataError


@pytest.mark.parametrize("text, expected", [
    ("<reasoning>piers and boats</reasoning><answer>harbor</answer>", 1.0),
    ("  \n<reasoning>r</reasoning>\n\n<answer>a</answer>\n ", 1.0),
    ("<reasoning> \n</reasoning><answer>a</answer>", 0.0),          # empty reasoning
    ("<reasoning>r</reasoning><answer>  </answer>", 0.0),            # empty answer
    ("<answer>a</answer><reasoning>r</reasoning>", 0.0),             # wrong order
    ("so: <reasoning>r</reasoning><answer>a</answer>", 0.0),         # text before
    ("<reasoning>r</reasoning><answer>a</answer> done", 0.0),        # text after
    ("<reasoning>r</reasoning>between<answer>a</answer>", 0.0),      # text between
    ("<reasoning>r<answer>b</answer></reasoning><answer>a</answer>", 0.0),  # nested
    ("<reasoning>r</reasoning><answer>a</answer><answer>b</answer>", 0.0),  # repeated
    ("<reasoning>r</reasoning><answer>a", 0.0),                      # unclosed
    ("harbor", 0.0),
    ("", 0.0),
])
def test_format_reward(text, expected):
    assert format_reward(text) == expected


def test_format_tags_are_configurable():
    text = "<think>count the ships</think><final>3</final>"
    assert format_reward(text, "think", "final") == 1.0
    assert format_reward(text) == 0.0


@pytest.mark.parametrize("prediction, truth, expected", [
    ("Harbor.", "harbor", 1.0),
    ("The harbor", "harbor", 1.0),
    ("True", "yes", 1.0),
    ("absent", "no", 1.0),
    ("2.0", "2", 1.0),
    ("1,000", "1000", 1.0),
    ("3", "2", 0.0),
    ("harbour", "harbor", 0.0),
    ("", "yes", 0.0),          # the reference's substring match scored an empty answer correct
    (None, "yes", 0.0),
])
def test_closed_reward(prediction, truth, expected):
    assert closed_reward(prediction, truth) == expected


CLASSES = "forest, river, beach, desert, farmland, harbor, airport, bridge, meadow, parking lot"


@pytest.mark.parametrize("prediction, expected", [
    ("forest and river", 1.0),
    ("River; Forest.", 1.0),
    ("river", 0.5),                                  # recall 1/2, no more labels than the truth
    ("river, beach", 0.5),                           # recall 1/2
    ("forest, river, beach, desert", 0.5),           # recall 1 x precision 2/4
    (CLASSES, 0.2),                                  # every class: recall 1 x precision 2/10
    ("beach", 0.0),
    ("", 0.0),
    (None, 0.0),
])
def test_label_recall_reward(prediction, expected):
    assert label_recall_reward(prediction, "forest, river") == pytest.approx(expected)


def test_listing_every_class_scores_low_for_a_single_label():
    assert label_recall_reward(CLASSES, "harbor") == pytest.approx(0.1)
    assert label_recall_reward("harbor", "harbor") == 1.0


TRUTH = "[[0, 0, 100, 100]]"
ONE_SEVENTH = 2500 / 17500  # [[50, 50, 150, 150]] vs TRUTH: intersection 50x50, union 2 x 100x100 - 2500


@pytest.mark.parametrize("prediction, expected", [
    ("[[0, 0, 100, 100]]", 1.0),
    ("[[50, 50, 150, 150]]", ONE_SEVENTH),
    ("[[150, 150, 50, 50]]", ONE_SEVENTH),                                    # reversed corners
    ("the ship <|box_start|>(50,50),(150,150)<|box_end|>", ONE_SEVENTH),
    ('[{"bbox_2d": [50, 50, 150, 150], "label": "ship"}]', ONE_SEVENTH),
    ("[[50, 50, 150, 150]] and [[0, 0, 100, 100]]", ONE_SEVENTH),             # the first box counts
    ("[[10, 10, 10, 50]] [[0, 0, 100, 100]]", 0.0),                            # first box has no area
    ("[[200, 200, 300, 300]]", 0.0),
    ("no box here", 0.0),
    (None, 0.0),
])
def test_box_iou_reward(prediction, expected):
    assert box_iou_reward(prediction, TRUTH) == pytest.approx(expected)


def _reference_box_reward(content: str) -> float:
    """The reference's type-2 accuracy: both boxes built from the completion's own first four numbers."""
    numbers = tuple(float(n) for n in re.findall(r"\d+", content)[:4])
    predicted, ground_truth = canonical_box(numbers), canonical_box(numbers)
    return iou(predicted, ground_truth)


def test_reference_iou_defect_is_fixed():
    """Any well-formed box scored 1.0 in the reference; ours scores it against the solution's box."""
    completion = "<reasoning>The tank is top left.</reasoning><answer>[[100, 100, 200, 200]]</answer>"
    solution_box = "[[600, 600, 900, 900]]"
    assert _reference_box_reward(completion) == 1.0
    answer = parse_completion(completion).answer
    assert box_iou_reward(answer, solution_box) == 0.0
    assert box_iou_reward(answer, "[[100, 100, 200, 200]]") == 1.0


def test_truth_without_a_box_is_a_data_error():
    with pytest.raises(DataError, match="solution answer"):
        box_iou_reward("[[0, 0, 10, 10]]", "harbor")
    with pytest.raises(DataError):
        truth_boxes("[[5, 5, 5, 80]]")  # no area


A, B = "[[0, 0, 100, 100]]", "[[200, 200, 300, 300]]"
FAR = "[[700, 700, 800, 800]]"


@pytest.mark.parametrize("prediction, expected", [
    (f"{A} {B}", 1.0),
    (A, 0.5),                              # best IoUs (1, 0) over the two truths
    (f"{B} {A} {FAR} {FAR}", 0.5),         # mean best 1.0 x guard 2/4
    ("[[0, 0, 1000, 1000]] " * 100, 0.01 * 2 / 100),  # tiling: best IoU 0.01 each, guard 2/100
    ("nothing", 0.0),
])
def test_detection_reward(prediction, expected):
    assert detection_reward(prediction, f"{A}, {B}") == pytest.approx(expected)


@pytest.mark.parametrize("prediction, expected", [
    (f"{A} {B}", 1.0),
    (A, 2 / 3),                            # TP 1: 2 x 1 / (1 + 2)
    (f"{B} {A} {FAR} {FAR}", 2 / 3),       # TP 2: 2 x 2 / (4 + 2)
    ("[[50, 50, 150, 150]]", 0.0),         # IoU 1/7 < 0.5
    ("[[0, 0, 1000, 1000]] " * 100, 0.0),
])
def test_detection_f1_reward(prediction, expected):
    assert detection_f1_reward(prediction, f"{A}, {B}") == pytest.approx(expected)


def test_detection_f1_matches_one_to_one():
    # one predicted box overlaps both truths at IoU >= 0.5 but may match only one of them
    assert detection_f1_reward("[[0, 0, 100, 100]]", "[[0, 0, 100, 100]] [[0, 0, 100, 90]]") == pytest.approx(2 / 3)


def test_levenshtein_ratio():
    assert levenshtein_ratio("kitten", "sitting") == pytest.approx(8 / 13)  # LCS "ittn": 2 x 4 / 13
    assert levenshtein_ratio("", "") == 1.0
    assert levenshtein_ratio("abc", "") == 0.0
    assert levenshtein_ratio("abc", "abc") == 1.0
    assert lcs_length("AGGTAB", "GXTXAYB") == 4


def test_levenshtein_reward_normalises():
    assert levenshtein_reward("The Harbor.", "harbor") == 1.0
    assert levenshtein_reward("", "harbor") == 0.0
    assert levenshtein_reward(None, "harbor") == 0.0


def test_jaccard():
    # "a red car and a blue car" -> {red, car, and, a, blue} (leading article dropped); truth {blue, car}
    assert jaccard_reward("a red car and a blue car", "blue car") == pytest.approx(2 / 5)
    assert jaccard_similarity("Blue car.", "blue CAR") == 1.0
    assert jaccard_reward(None, "blue car") == 0.0
    assert jaccard_reward("?!", "blue car") == 0.0


def test_lmgr():
    truth = "a ship [[0, 0, 100, 100]]"
    assert lmgr_reward("A ship [[0, 0, 100, 100]]", truth) == pytest.approx(1.0)
    # words "boat" vs "ship" share nothing (lexical 0), the box is exact (detection 1)
    assert lmgr_reward("a boat [[0, 0, 100, 100]]", truth) == pytest.approx(0.5)
    # words exact, box IoU 1/7
    assert lmgr_reward("a ship [[50, 50, 150, 150]]", truth) == pytest.approx((1 + ONE_SEVENTH) / 2)


def test_registry_declares_ranges_in_registry_and_docstrings():
    from tinyrs.grpo.rewards import boxes, closed, format, judge, text

    documented = {
        "format": format.format_reward, "closed": closed.closed_reward, "recall": closed.label_recall_reward,
        "box_iou": boxes.box_iou_reward, "detection": boxes.detection_reward,
        "detection_f1": boxes.detection_f1_reward, "levenshtein": text.levenshtein_reward,
        "jaccard": text.jaccard_reward, "lmgr": text.lmgr_reward, "sbert": text.sbert_rewards,
        "hslr": text.hslr_rewards, "judge": judge,
    }
    assert set(documented) == set(REWARDS)
    for name, spec in REWARDS.items():
        assert (spec.low, spec.high) == (0.0, 1.0)
        assert "range [0, 1]" in inspect.getdoc(documented[name]).lower(), name


# --- pinned by mutation testing (bench/mutation.py): each case kills a surviving mutant ------------------------------

def test_detection_f1_threshold_is_half_inclusive():
    truth = "[[0, 0, 500, 500]]"
    assert detection_f1_reward("[[0, 0, 250, 500]]", truth) == 1.0    # IoU 0.5 exactly: a match
    assert detection_f1_reward("[[0, 0, 240, 500]]", truth) == 0.0    # IoU 0.48: none (0.45 would match it)


def test_label_recall_of_a_truth_without_labels_is_zero():
    assert label_recall_reward("forest", "") == 0.0
    assert label_recall_reward("forest", " , ;") == 0.0


def test_degenerate_boxes_count_as_written_boxes():
    # Boxes with no area score nothing but still count among the M written boxes: spamming [[5, 5, 5, 80]]
    # cannot bypass the spam guard. Truths A, B found, plus two degenerate boxes: M = 4.
    spam = f"{A} {B} [[5, 5, 5, 80]] [[5, 5, 5, 80]]"
    assert detection_reward(spam, f"{A}, {B}") == pytest.approx(0.5)        # mean best 1 x guard 2/4
    assert detection_f1_reward(spam, f"{A}, {B}") == pytest.approx(2 / 3)   # 2 x 2 / (4 + 2)
