"""Per-sample scoring, answer parsing edge cases and the metrics, against hand-computed values."""
from __future__ import annotations

import pytest

from tinyrs.answers import option_letter, parse_boxes, split_labels, strip_boxes
from tinyrs.grpo.rewards.boxes import detection_f1_reward, detection_reward
from tinyrs.eval.lenient import reference_closed_match, reference_lhrs_match
from tinyrs.eval.scoring import aggregate, ground_truth_problem, score_row, size_bucket
from tinyrs.eval.tasks import Task
from tinyrs.settings import ChatSettings

CHAT = ChatSettings(system_prompt="", reasoning_system_prompt="", reasoning_tag="reasoning", answer_tag="answer")
CLS = Task("cls", "cls.json", "accuracy", "classification", "{CLS}")
VG = Task("vg", "vg.json", "grounding", "grounding", "{VG}")
VG_PIXELS = Task("vg_px", "vg.json", "grounding", "grounding", "{VG}", answer_boxes="pixels")
LHRS = Task("lhrs", "lhrs.json", "lhrs_accuracy", "lhrs")


def scored(task: Task, pred: str, answer: str, **extra) -> dict:
    row = {"pred": pred, "answer": answer, **extra}
    return {**row, **score_row(task, row, CHAT)}


# --- closed answers: parsing and strict matching -------------------------------------------------------------------

@pytest.mark.parametrize("pred, answer, strict", [
    ("forest", "forest", True),
    ("Forest.", "forest", True),                    # trailing punctuation
    ("  FOREST  ", "Forest", True),                  # case and spaces
    ("Yes.", "yes", True),                           # yes/no synonyms
    ("true", "yes", True),
    ("absent", "no", True),
    ("2", "2.0", True),                              # numbers compare as numbers
    ("forest area", "forest", False),
    ("for", "forest", False),
    ("", "forest", False),                           # empty answer is wrong
    ("<reasoning>green canopy</reasoning><answer>forest</answer>", "forest", True),
    ("<answer>forest</answer>", "forest", True),     # answer block without reasoning
    ("<reasoning>green canopy</reasoning> forest", "forest", True),  # text after the reasoning block
    ("<reasoning>green canopy, so it is a forest", "forest", False),  # reasoning never closed: no answer
    ("<reasoning>forest</reasoning>", "forest", False),  # reasoning but no answer after it
])
def test_closed_answer_strict(pred, answer, strict):
    assert scored(CLS, pred, answer)["correct"] is strict


def test_strict_reads_the_last_answer_block():
    # The reference reads the first block (tests/test_eval_reference.py); ours the last, the model's final word.
    assert scored(CLS, "<answer>desert</answer><answer>forest</answer>", "forest")["correct"] is True
    assert scored(CLS, "<answer>forest</answer><answer>desert</answer>", "forest")["correct"] is False
    box_last = scored(VG, "<answer>[[600, 600, 700, 700]]</answer><answer>[[100, 100, 300, 300]]</answer>",
                      "[[100, 100, 300, 300]]", size=[100, 100])
    assert box_last["correct"] is True


def test_unclosed_reasoning_has_no_parsed_answer():
    assert scored(CLS, "<reasoning>still thinking", "forest")["parsed"] is None


# --- the reference's lenient rule: documented quirks ---------------------------------------------------------------

def test_lenient_counts_an_empty_answer_as_correct():
    # The reference tested `prediction in answer`; "" is a substring of everything.
    assert reference_closed_match("", "forest") is True
    assert scored(CLS, "", "forest")["correct_lenient"] is True


def test_lenient_accepts_a_prefix_and_cuts_at_the_first_period_or_comma():
    assert reference_closed_match("for", "forest") is True
    assert reference_closed_match("forest, with a river", "forest") is True
    assert reference_closed_match("Forest. It has trees", "forest") is True
    assert reference_closed_match("dense forest", "forest") is False  # spaces are removed: "denseforest"


def test_lenient_keeps_the_whole_text_when_reasoning_is_not_closed():
    assert reference_closed_match("<reasoning>forest", "forest") is False  # "<reasoning>forest" is no substring
    assert reference_closed_match("<reasoning>x</reasoning>forest", "forest") is True


def test_lenient_lhrs_rule_cuts_at_period_only():
    assert reference_lhrs_match("B. forest", "B") is True
    assert reference_lhrs_match("The answer is B", "B") is False   # strict accepts this one
    assert reference_lhrs_match("", "B") is True


# --- option letters (LHRS-Bench) -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("B.", "B"), ("(B)", "B"), ("B. forest", "B"), ("The answer is B", "B"),
    ("Answer: (C).", "C"), ("B) forest", "B"), ("A forest", None), ("b", None), ("", None), (None, None),
])
def test_option_letter(text, letter):
    assert option_letter(text) == letter


def test_lhrs_strict_compares_letters():
    assert scored(LHRS, "The answer is B", "B. forest", type=[1])["correct"] is True
    assert scored(LHRS, "<answer>(C)</answer>", "B", type=[1])["correct"] is False
    assert scored(LHRS, "forest", "B", type=[1])["correct"] is False


# --- box forms the strict parser reads (the list in answers.parse_boxes's docstring) -----------------------------

@pytest.mark.parametrize("text, boxes", [
    ("[[120, 40, 300, 200]]", [(120, 40, 300, 200)]),                       # the VHM form
    ("[[120 40 300 200]]", [(120, 40, 300, 200)]),                           # spaces only (the reference reads it)
    ("[[120,40,300,200]]", [(120, 40, 300, 200)]),
    ("[ 120 , 40 , 300 , 200 ]", [(120, 40, 300, 200)]),                     # bare list, spaces everywhere
    ("[[120\t40\n300  200]]", [(120, 40, 300, 200)]),                        # tabs, newlines, runs of spaces
    ("[[120, 40 300,200]]", [(120, 40, 300, 200)]),                          # separators mixed
    ("[120, 40, 300, 200]", [(120, 40, 300, 200)]),
    ("[[-5, 2.5, +300, 200]]", [(-5, 2.5, 300, 200)]),                       # signs and decimals, as written
    ("[[300, 200, 120, 40]]", [(300, 200, 120, 40)]),                        # reversed: canonical_box orders it
    ("<|box_start|>(120,40),(300,200)<|box_end|>", [(120, 40, 300, 200)]),
    ("<|box_start|> ( 120 , 40 ) , ( 300 , 200 ) <|box_end|>", [(120, 40, 300, 200)]),
    ('{"bbox_2d": [120, 40, 300, 200], "label": "tank"}', [(120, 40, 300, 200)]),
    ('{"bbox_2d": [120 40 300 200]}', [(120, 40, 300, 200)]),              # not JSON: read by the list rule
    ('[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]}]', [(1, 2, 3, 4), (5, 6, 7, 8)]),
    ("a [[5 6 7 8]] b <|box_start|>(1,2),(3,4)<|box_end|> c [[9,10,11,12]]",
     [(5, 6, 7, 8), (1, 2, 3, 4), (9, 10, 11, 12)]),                        # in order of position
    ("[[1, 2, 3, 4], [5, 6, 7, 8]]", [(1, 2, 3, 4), (5, 6, 7, 8)]),
    # not boxes
    ("[[120;40;300;200]]", []), ("[[120,,40,300,200]]", []), ("[[1e3, 0, 5, 5]]", []), ("[[.5, 1, 2, 3]]", []),
    ("[[5., 1, 2, 3]]", []), ("[[nan, 1, 2, 3]]", []), ("[[1, 2, 3]]", []), ("[[1 2 3 4 5]]", []),
    ("[[120403002]]", []), ("(120, 40, 300, 200)", []), ("", []), (None, []),
])
def test_strict_box_forms(text, boxes):
    assert parse_boxes(text) == [tuple(float(v) for v in box) for box in boxes]


def test_space_separated_box_scores_in_the_strict_column():
    row = scored(VG, "<answer>[[100 100 300 300]]</answer>", "[[100, 100, 300, 300]]", size=[100, 100])
    assert row["box"] == [100, 100, 300, 300] and row["correct"] is True and row["boxes_written"] == 1


def test_strip_boxes_removes_space_separated_boxes():
    assert strip_boxes("a tank [[120 40 300 200]] near [[1, 2, 3, 4]] the pier") == "a tank near the pier"


@pytest.mark.parametrize("prediction", [
    '{"bbox_2d": [0, 0, 100, 100]}', '[{"bbox_2d": [0, 0, 100, 100], "label": "ship"}]',
    '{"bbox_2d": [0 0 100 100]}', '```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "ship"}]\n```',
])
def test_a_bbox_2d_box_is_counted_once(prediction):
    # Counted twice (as bbox_2d and again as the bare list inside it), the detection reward's spam guard
    # min(1, N/M) would halve a perfect answer and F1 would drop to 2/3.
    assert parse_boxes(prediction) == [(0.0, 0.0, 100.0, 100.0)]
    assert detection_reward(prediction, "[[0, 0, 100, 100]]") == 1.0
    assert detection_f1_reward(prediction, "[[0, 0, 100, 100]]") == 1.0


@pytest.mark.parametrize("text, labels", [
    ("Forest\nRiver AND beach", ["forest", "river", "beach"]),   # newline and "AND" in any case separate
    ("forest;river, beach and Desert", ["forest", "river", "beach", "desert"]),
    ("River\nriver", ["river"]),                                 # case-folded before de-duplication
    ("sandbank", ["sandbank"]),                                  # "and" only as a word
])
def test_split_labels(text, labels):
    assert split_labels(text) == labels


# --- grounding ----------------------------------------------------------------------------------------------------

def test_first_box_is_the_prediction():
    first_right = scored(VG, "[[100, 100, 300, 300]] and [[600, 600, 700, 700]]", "[[100, 100, 300, 300]]", size=[100, 100])
    first_wrong = scored(VG, "[[600, 600, 700, 700]] and [[100, 100, 300, 300]]", "[[100, 100, 300, 300]]", size=[100, 100])
    assert (first_right["correct"], first_wrong["correct"]) == (True, False)
    assert first_right["iou"] == pytest.approx(1.0)


def test_reversed_box_is_reordered_and_out_of_range_box_is_clipped():
    reversed_box = scored(VG, "[[300, 300, 100, 100]]", "[[100, 100, 300, 300]]", size=[100, 100])
    assert reversed_box["box"] == [100, 100, 300, 300] and reversed_box["iou"] == pytest.approx(1.0)
    clipped = scored(VG, "[[-50, -50, 1200, 1200]]", "[[0, 0, 1000, 1000]]", size=[100, 100])
    assert clipped["box"] == [0, 0, 1000, 1000] and clipped["correct"] is True


def test_completion_without_box_is_a_miss_not_dropped():
    row = scored(VG, "the red roof", "[[100, 100, 300, 300]]", size=[100, 100])
    assert row["correct"] is False and row["iou"] == 0.0 and row["box"] is None
    assert row["correct_lenient"] is None  # the reference's rule drops it


def test_degenerate_box_is_a_miss_in_both_columns():
    row = scored(VG, "[[100, 100, 100, 300]]", "[[100, 100, 300, 300]]", size=[100, 100])
    assert row["correct"] is False and row["correct_lenient"] == 0
    assert row["lenient_pairs"] == [{"iou": 0.0, "hit": False, "bucket": "small"}]


def test_precision_counts_boxless_completions_in_the_denominator():
    # Regression test for REFERENCE.md §3.4: 1 hit, 1 miss, 1 box-less completion.
    gt = "[[0, 0, 500, 500]]"
    rows = [scored(VG, "[[0, 0, 500, 500]]", gt, size=[800, 800]),        # IoU 1
            scored(VG, "[[0, 0, 250, 500]]", gt, size=[800, 800]),        # IoU 0.5: a hit (>= 0.5)
            scored(VG, "[[0, 0, 100, 500]]", gt, size=[800, 800]),        # IoU 0.2
            scored(VG, "I cannot see it", gt, size=[800, 800])]
    metrics = aggregate(VG, rows)["metrics"]
    assert metrics["precision@0.5"] == {"value": 2 / 4, "n": 4, "correct": 2}
    assert metrics["precision@0.5_lenient"] == {"value": 2 / 3, "n": 3, "correct": 2}
    assert metrics["mean_iou"]["value"] == pytest.approx((1 + 0.5 + 0.2 + 0) / 4)
    assert metrics["no_box_rate"]["value"] == pytest.approx(1 / 4)


def test_strict_iou_threshold_is_half_inclusive():
    gt = "[[0, 0, 500, 500]]"
    assert scored(VG, "[[0, 0, 250, 500]]", gt, size=[800, 800])["correct"] is True     # IoU 0.5 exactly
    assert scored(VG, "[[0, 0, 249, 500]]", gt, size=[800, 800])["correct"] is False    # IoU 0.498
    below = scored(VG, "[[0, 0, 240, 500]]", gt, size=[800, 800])                      # IoU 0.48
    assert below["iou"] == pytest.approx(0.48) and below["correct"] is False


def test_size_buckets_in_pixels():
    assert [size_bucket(a) for a in (31 * 31, 32 * 32, 95 * 95, 96 * 96)] == ["small", "medium", "medium", "large"]
    # normalised ground truth: 100 x 100 grid units of a 640 x 480 image = 64 x 48 pixels (medium)
    row = scored(VG, "[[0, 0, 100, 100]]", "[[0, 0, 100, 100]]", size=[640, 480])
    assert row["bucket"] == "medium"
    metrics = aggregate(VG, [row])["metrics"]
    assert metrics["precision@0.5_medium"]["n"] == 1 and metrics["precision@0.5_small"] == {"value": None, "n": 0, "correct": 0}


def test_pixel_ground_truth_uses_size_as_width_height():
    # A 1000 x 200 image: the ground truth covers the left half in pixels, [0, 0, 500, 200].
    # The model's grid box [[0, 0, 500, 1000]] is the left half: x * 1000/1000, y * 200/1000 -> IoU 1.
    # Read as [height, width] (the reference's bug, REFERENCE.md §3.9) it becomes [0, 0, 100, 1000]: IoU 0.1.
    row = scored(VG_PIXELS, "[[0, 0, 500, 1000]]", "[[0, 0, 500, 200]]", size=[1000, 200])
    assert row["iou"] == pytest.approx(1.0) and row["correct"] is True
    swapped = scored(VG_PIXELS, "[[0, 0, 500, 1000]]", "[[0, 0, 500, 200]]", size=[200, 1000])
    assert swapped["correct"] is False
    # The bucket of a pixel ground truth is its own area (500 x 200 = 100000 px: large); for a
    # small one (20 x 20) the bucket is small whatever the image size.
    assert row["bucket"] == "large"
    assert scored(VG_PIXELS, "[[0, 0, 20, 100]]", "[[0, 0, 20, 20]]", size=[1000, 200])["bucket"] == "small"


def test_every_corner_is_scaled_by_its_own_side():
    # 1000 x 200 image, ground truth [100, 20, 600, 180] px = [[100, 100, 600, 900]] on the grid: IoU 1 only if
    # x1 and x2 are scaled by the width and y1 and y2 by the height (no coordinate is 0, width != height).
    row = scored(VG_PIXELS, "[[100, 100, 600, 900]]", "[[100, 20, 600, 180]]", size=[1000, 200])
    assert row["iou"] == pytest.approx(1.0, abs=1e-12) and row["correct"] is True


# --- metrics --------------------------------------------------------------------------------------------------------

def test_accuracy_metrics_hand_computed():
    rows = [scored(CLS, "forest", "forest"), scored(CLS, "Forest.", "forest"),
            scored(CLS, "for", "forest"), scored(CLS, "desert", "forest")]
    result = aggregate(CLS, rows)
    assert (result["n"], result["correct"], result["correct_lenient"]) == (4, 2, 3)
    assert result["metrics"]["accuracy"]["value"] == 0.5
    assert result["metrics"]["accuracy_lenient"]["value"] == 0.75
    assert (result["primary"], result["lenient"]) == ("accuracy", "accuracy_lenient")


def test_lhrs_metrics_overall_and_per_type():
    rows = [scored(LHRS, "A", "A", type=[1]), scored(LHRS, "B", "A", type=[1, 5]),
            scored(LHRS, "(C)", "C", type=[5]), scored(LHRS, "D.", "D", type=[11])]
    metrics = aggregate(LHRS, rows)["metrics"]
    assert metrics["accuracy"]["value"] == 0.75
    assert metrics["accuracy_identity"] == {"value": 0.5, "n": 2, "correct": 1}
    assert metrics["accuracy_quantity"] == {"value": 0.5, "n": 2, "correct": 1}
    assert metrics["accuracy_reasoning"] == {"value": 1.0, "n": 1, "correct": 1}
    assert metrics["accuracy_color"] == {"value": None, "n": 0, "correct": 0}
    # per type, the lenient column too: "A" is a substring of "a", "B" is not, "(C)" -> "(c)" is not in "c"
    assert metrics["accuracy_lenient_identity"] == {"value": 0.5, "n": 2, "correct": 1}
    assert metrics["accuracy_lenient_quantity"] == {"value": 0.0, "n": 2, "correct": 0}
    assert metrics["accuracy_lenient_reasoning"] == {"value": 1.0, "n": 1, "correct": 1}
    assert metrics["accuracy_lenient"] == {"value": 0.5, "n": 4, "correct": 2}
    assert len([name for name in metrics if name.startswith("accuracy_")]) == 2 * 11 + 1  # 11 types x 2 + lenient


def test_empty_task_has_no_values():
    assert aggregate(CLS, [])["metrics"]["accuracy"] == {"value": None, "n": 0, "correct": 0}


@pytest.mark.parametrize("task, answer, size, types, reason", [
    (CLS, "", None, None, "empty_answer"),
    (CLS, "forest", [0, 10], None, "bad_size"),
    (CLS, "forest", [10], None, "bad_size"),
    (VG, "the roof", [10, 10], None, "answer_without_box"),
    (VG, "[[5, 5, 5, 9]]", [10, 10], None, "answer_without_box"),
    (LHRS, "forest", None, [1], "answer_without_option"),
    (LHRS, "B", None, [12], "bad_type"),
    (LHRS, "B", None, None, "bad_type"),
])
def test_ground_truth_problems(task, answer, size, types, reason):
    assert ground_truth_problem(task, answer, size, types)[0] == reason


def test_usable_ground_truth_has_no_problem():
    assert ground_truth_problem(VG_PIXELS, "[[10, 10, 2000, 900]]", [2048, 1024], None) is None
    assert ground_truth_problem(LHRS, "C. harbour", [5, 5], [2, 3]) is None


# --- pinned by mutation testing (bench/mutation.py): each case kills a surviving mutant ------------------------------

def test_parsed_answer_and_reasoning_are_stripped():
    from tinyrs.answers import parse_completion
    assert parse_completion("<reasoning> green canopy\n</reasoning><answer> forest \n</answer>") == (
        "green canopy", "forest", True)
    assert scored(CLS, "<reasoning>r</reasoning>  forest \n", "forest")["parsed"] == "forest"
    assert scored(CLS, "  forest \n", "forest")["parsed"] == "forest"


def test_text_after_the_last_reasoning_close_is_the_answer():
    # rsplit at the LAST </reasoning>: a stray second close does not leave the middle piece as the answer
    row = scored(CLS, "<reasoning>a</reasoning>desert</reasoning>forest", "forest")
    assert row["parsed"] == "forest" and row["correct"] is True


def test_closed_match_normalises_both_sides():
    from tinyrs.answers import closed_answers_match
    assert closed_answers_match("yes", "True") is True        # the ground truth's synonym is mapped too
    assert closed_answers_match("absent", "No.") is True
    assert closed_answers_match("3", 3) is True                # a number read from JSON as a ground truth


@pytest.mark.parametrize("text", [
    '"bbox_2d": [0, 0, Infinity, 100]',                        # JSON reads Infinity: not a finite box
    '"bbox_2d": [0, 0, NaN, 100]',
    "[0, 0, " + "9" * 400 + ", 100]",                          # 400 digits: float inf
    '"bbox_2d": [1, 2, 3]',                                    # three numbers are no box
    '"bbox_2d": [1, 2, 3, 4, 5]',
])
def test_non_finite_or_wrong_length_boxes_are_not_boxes(text):
    assert parse_boxes(text) == []


def test_a_list_right_after_a_bbox_2d_list_is_its_own_box():
    # the bbox_2d span ends at its "]": a list starting exactly there is not inside it
    assert parse_boxes('"bbox_2d": [1, 2, 3, 4][5, 6, 7, 8]') == [(1, 2, 3, 4), (5, 6, 7, 8)]


def test_strip_boxes_leaves_no_surrounding_space():
    assert strip_boxes("[[1, 2, 3, 4]] a ship [[5, 6, 7, 8]]") == "a ship"


def test_canonical_box_without_area_is_none():
    from tinyrs.answers import canonical_box
    assert canonical_box((10, 10, 10, 50)) is None              # zero width
    assert canonical_box((10, 50, 40, 50)) is None              # zero height
    assert canonical_box((1200, 0, 1500, 100)) is None          # clipped to the grid's edge: no width left
    assert canonical_box((10, 20, 11, 21)) == (10, 20, 11, 21)  # any positive area counts


def test_iou_edge_cases():
    from tinyrs.answers import iou
    assert iou((0, 0, 100, 100), (200, 0, 300, 100)) == 0.0     # apart in x, overlapping in y
    assert iou((0, 0, 100, 100), (0, 200, 100, 300)) == 0.0     # apart in y, overlapping in x
    assert iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == 1.0       # a union below 1 is still a union
    assert iou((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0               # no union at all: 0, not a division by zero


def test_format_box_rounds_to_the_vhm_form():
    from tinyrs.answers import format_box
    assert format_box((120.4, 40.6, 300, 200)) == "[[120, 41, 300, 200]]"


@pytest.mark.parametrize("task, answer, size, types, reason", [
    (CLS, " \n ", None, None, "empty_answer"),                  # whitespace only
    (LHRS, "B", None, [], "bad_type"),                           # an empty type list
    (VG_PIXELS, "[[5, 5, 5, 9]]", [10, 10], None, "answer_without_box"),   # pixel truth without width
    (VG_PIXELS, "[[5, 5, 9, 5]]", [10, 10], None, "answer_without_box"),   # ... without height
])
def test_more_ground_truth_problems(task, answer, size, types, reason):
    assert ground_truth_problem(task, answer, size, types)[0] == reason


def test_smallest_usable_ground_truth():
    assert ground_truth_problem(CLS, "forest", [1, 1], None) is None          # a 1 x 1 image is a size
    assert ground_truth_problem(CLS, "forest", [0.5, 2], None) is None
    assert ground_truth_problem(LHRS, "B", None, [1]) is None                 # one type id is enough


def test_ground_truth_box_clips_only_grid_truths():
    from tinyrs.eval.scoring import ground_truth_box
    assert ground_truth_box(VG_PIXELS, "[[10, 10, 2000, 900]]") == (10, 10, 2000, 900)   # pixels: not clipped
    assert ground_truth_box(VG_PIXELS, "[[300, 200, 100, 50]]") == (100, 50, 300, 200)   # but ordered
    assert ground_truth_box(VG, "[[0, 0, 1200, 500]]") == (0, 0, 1000, 500)              # grid: clipped
    row = scored(VG, "[[0, 0, 1000, 500]]", "[[0, 0, 1200, 500]]", size=[100, 100])
    assert row["iou"] == pytest.approx(1.0)


def test_size_bucket_of_a_box_away_from_the_origin():
    # area = (x2 - x1) * (y2 - y1): 20 x 20 px = 400 (small) wherever the box lies
    assert scored(VG_PIXELS, "[[100, 500, 120, 600]]", "[[100, 100, 120, 120]]", size=[1000, 200])["bucket"] == "small"
    # grid truth 10 x 10 units of a 640 x 480 image: 6.4 x 4.8 px (small)
    assert scored(VG, "[[500, 500, 510, 510]]", "[[500, 500, 510, 510]]", size=[640, 480])["bucket"] == "small"


@pytest.mark.parametrize("size", [[1000, 100], [100, 1000]])
def test_grid_truth_area_uses_width_times_height(size):
    # 100 x 100 grid units = 100 x 10 px (or 10 x 100): 1000 px, small; width² or height² would give 100 or 10000
    assert scored(VG, "[[0, 0, 100, 100]]", "[[0, 0, 100, 100]]", size=size)["bucket"] == "small"
