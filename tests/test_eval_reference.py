"""The lenient column against the reference evaluator's rules (REFERENCE.md §9), case by case.

Every expected outcome below was derived by hand from the rules as tinyrs/eval/lenient.py's docstring states them
(R1-R3 extraction, C1-C4 classification/VQA, L1-L3 LHRS-Bench, G1-G8 grounding); the comment on a case is the
derivation. None is computed with the code under test. Where the strict column disagrees, the case says so.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from tinyrs.eval import lenient
from tinyrs.eval.lenient import (
    reference_answer_text,
    reference_closed_match,
    reference_grounding_pairs,
    reference_iou,
    reference_lhrs_match,
    reference_size_bucket,
)
from tinyrs.eval.runner import score_predictions
from tinyrs.eval.scoring import aggregate, ground_truth_problem, score_row
from tinyrs.eval.tasks import LHRS_TYPES, Task
from tinyrs.settings import ChatSettings

CHAT = ChatSettings(system_prompt="", reasoning_system_prompt="", reasoning_tag="reasoning", answer_tag="answer")
CLS = Task("cls", "cls.json", "accuracy", "classification", "{CLS}")
VQA = Task("vqa", "vqa.json", "accuracy", "vqa", "{VQA}")
LHRS = Task("lhrs", "lhrs.json", "lhrs_accuracy", "lhrs")
VG = Task("rs_vg", "vg.json", "grounding", "grounding", "{VG}", answer_boxes="pixels")
VG_GRID = Task("vg_grid", "vg.json", "grounding", "grounding", "{VG}", answer_boxes="normalized")
R, A = "reasoning", "answer"


def scored(task: Task, pred, answer: str, **extra) -> dict:
    row = {"pred": pred, "answer": answer, **extra}
    return {**row, **score_row(task, row, CHAT)}


# --- R1-R3: the text the reference scores ---------------------------------------------------------------------------

EXTRACTION = [
    # (prediction, extracted text)
    ("forest", "forest"),                                          # no tags: unchanged
    ("", ""),
    (None, "None"),                                                # R1: str(None)
    (123, "123"),                                                  # R1: str() of anything
    ("<reasoning>r</reasoning><answer>x</answer>", "x"),
    ("<reasoning>r</reasoning>x", "x"),                            # R2 only
    ("<reasoning>r</reasoning> x \n", " x \n"),                    # nothing stripped
    ("pre<reasoning>r</reasoning><answer>x</answer>", "x"),
    ("<reasoning>r", "<reasoning>r"),                              # R2: no close in the segment -> whole text
    ("<reasoning>r<answer>x</answer>", "x"),                       # whole text kept, then R3
    ("<reasoning>r<answer>x", "x"),                                # ... and R3 runs to the end
    # several <reasoning> tags: segment = between the 1st and 2nd <reasoning>; [1] after its 1st </reasoning>
    ("<reasoning>a</reasoning><reasoning>b</reasoning><answer>x</answer>", ""),
    ("<reasoning>a</reasoning>y<reasoning>b</reasoning><answer>x</answer>", "y"),
    ("<reasoning>a</reasoning><answer>x</answer><reasoning>b</reasoning>", "x"),   # segment holds the answer
    # nested: segment "a" has no </reasoning> -> whole text, then the first <answer> block
    ("<reasoning>a<reasoning>b</reasoning>c</reasoning><answer>x</answer>", "x"),
    ("<reasoning>a<reasoning>b</reasoning>c</reasoning>x", "<reasoning>a<reasoning>b</reasoning>c</reasoning>x"),
    # reasoning after the answer: segment "r</reasoning>" -> "" (the answer block is gone)
    ("<answer>x</answer><reasoning>r</reasoning>", ""),
    ("<answer>x</answer><reasoning>r</reasoning>y", "y"),
    ("<answer>a</answer><reasoning>r</reasoning><answer>b</answer>", "b"),
    # a second </reasoning> in the segment ends the text: [1] is between the 1st and 2nd close
    ("<reasoning>a</reasoning>b</reasoning>c", "b"),
    ("<reasoning>r</reasoning><answer>x</answer></reasoning>z", "x"),
    ("</reasoning>x", "</reasoning>x"),                            # a close without an open: R2 does not apply
    ("<reasoning></reasoning>", ""),
    ("<reasoning>r</reasoning><answer></answer>", ""),
    ("<answer></answer>", ""),
    ("<answer>x", "x"),                                            # R3: unclosed answer runs to the end
    ("<answer>x</answer> trailing", "x"),                          # R3: cut at </answer>
    ("<answer>x</answer><answer>y</answer>", "x"),                 # R3: the FIRST answer block
    ("<answer>x<answer>y</answer>", "x"),                          # R3: [1] ends at the 2nd <answer>
    ("<reasoning>r</reasoning>\n<answer>x", "x"),
    ("<REASONING>r</REASONING>x", "<REASONING>r</REASONING>x"),    # tags are case-sensitive
    ("<Answer>x</Answer>", "<Answer>x</Answer>"),
]


@pytest.mark.parametrize("pred, expected", EXTRACTION)
def test_extraction(pred, expected):
    assert reference_answer_text(pred) == expected


def test_extraction_uses_the_configured_tags():
    text = "<think>r</think><final>x</final>"
    assert reference_answer_text(text, "think", "final") == "x"
    assert reference_answer_text(text) == text
    chat = replace(CHAT, reasoning_tag="think", answer_tag="final")
    # the whole text "<think>r</think><final>forest</final>" is no substring of "forest"; "forest" is
    row = {"pred": "<think>r</think><final>forest</final>", "answer": "forest"}
    assert score_row(CLS, row, chat)["correct_lenient"] is True and score_row(CLS, row, CHAT)["correct_lenient"] is False
    row = {"pred": "<think>r</think><final>[[100, 100, 300, 300]]</final><final>x</final>", "answer": GT,
           "size": [1000, 1000]}
    assert score_row(VG, row, chat)["lenient_pairs"] == [{"iou": 1.0, "hit": True, "bucket": "large"}]
    assert score_row(VG, row, CHAT)["lenient_pairs"] == [{"iou": 1.0, "hit": True, "bucket": "large"}]
    row["pred"] = "<final>no</final><think>r</think>[[100, 100, 300, 300]]"  # after </think>: the box
    assert score_row(VG, row, chat)["lenient_pairs"] == [{"iou": 1.0, "hit": True, "bucket": "large"}]
    row["pred"] = "<think>r</think><final>no</final>[[100, 100, 300, 300]]"  # configured: "no"
    assert score_row(VG, row, chat)["lenient_pairs"] == []
    assert score_row(VG, row, CHAT)["lenient_pairs"] == [{"iou": 1.0, "hit": True, "bucket": "large"}]


# --- C1-C4: classification and VQA --------------------------------------------------------------------------------

CLOSED = [
    # (prediction, ground truth, reference verdict)
    ("forest", "forest", True),
    ("Forest", "forest", True),                          # C3 lower
    ("FOREST", "Forest", True),
    ("for", "forest", True),                             # C4 substring: a prefix
    ("rest", "forest", True),                            # C4 substring: not a prefix
    ("forests", "forest", False),
    ("", "forest", True),                                # "" is a substring of everything
    ("", "", True),
    ("x", "", False),
    (None, "forest", False),                             # R1 "None" -> "none", not in "forest"
    (None, "none", True),                                # "none" in "none"
    (None, "None of them", True),                        # truth "Noneofthem" -> "noneofthem"
    ("None", "none", True),
    ("dense forest", "forest", False),                   # C1 "denseforest" not in "forest"
    ("dense forest", "dense forest", True),              # both "denseforest"
    ("forest", "dense forest", True),
    ("fo rest", "forest", True),                         # C1 on the prediction
    ("forest", "for est", True),                         # C1 on the truth
    ("Forest. It has trees", "forest", True),            # C2 "."
    ("forest, river", "forest", True),                   # C2 ","
    ("river. forest", "forest", False),                  # C2 keeps "river"
    ("a,b.c", "a", True),                                # C2 "." first -> "a,b", then "," -> "a"
    (".forest", "forest", True),                         # C2 -> "" -> always correct
    (",", "x", True),
    ("forest.", "forest.", True),
    ("forest", "Forest.", True),                         # truth not cut: "forest." contains "forest"
    ("1,000", "1000", True),                             # C2 -> "1", in "1000"
    ("1000", "1,000", False),
    ("2", "12", True),
    ("no", "not", True),
    ("y", "yes", True),
    ("Yes", "yes", True),
    ("yes", "no", False),
    ("forest river", "forest,river", False),             # "forestriver" not in "forest,river"
    ("forest,river", "forest,river", True),              # C2 -> "forest"
    ("forest\n", "forest", True),                        # C3 strip removes the newline
    ("\tforest", "forest", True),
    ("forest\nriver", "forest", False),                  # inner newline stays
    ("forest\u00a0area", "forest", False),               # C1 removes U+0020 only
    ("fo\u00a0rest", "forest", False),                   # ... a no-break space inside stays
    ("fo\nrest", "forest", False),                       # ... so does a newline
    ("fo\trest", "forest", False),                       # ... and a tab
    ("\u00a0forest\u00a0", "forest", True),              # C3 strip removes a no-break space at the ends
    ("<reasoning>r</reasoning><answer>forest</answer>", "forest", True),
    ("<answer>forest</answer>desert", "forest", True),   # R3 cut at </answer> ("forest</answer>desert" is not)
    ("<answer>forest</answer> but maybe desert", "forest", True),
    ("<answer>forest", "forest", True),
    ("<answer>forest. Because", "forest", True),
    ("<answer> </answer>", "forest", True),              # " " -> "" -> correct
    ("<answer>\n</answer>", "forest", True),             # strip -> ""
    ("<answer>desert<answer>forest</answer>", "forest", False),      # -> "desert"
    ("<answer>desert</answer><answer>forest</answer>", "forest", False),  # first block (strict: last, correct)
    ("<reasoning>a</reasoning><reasoning>b</reasoning><answer>desert</answer>", "forest", True),  # -> ""
    ("<reasoning>a<reasoning>b</reasoning>c</reasoning><answer>desert</answer>", "forest", False),  # nested
    ("<reasoning>a<reasoning>b</reasoning>c</reasoning><answer>forest</answer>", "forest", True),
    ("<answer>desert</answer><reasoning>r</reasoning>", "forest", True),      # -> ""
    ("<answer>desert</answer><reasoning>r</reasoning>for", "forest", True),   # -> "for"
    ("<reasoning>forest", "forest", False),              # unclosed: "<reasoning>forest" kept whole
    ("<reasoning>forest", "<reasoning>forest is it", True),  # ... kept whole, not emptied
    ("<reasoning>green</reasoning>forest.", "forest", True),
]


@pytest.mark.parametrize("pred, answer, verdict", CLOSED)
def test_closed(pred, answer, verdict):
    assert reference_closed_match(pred, answer) is verdict
    for task in (CLS, VQA):
        assert scored(task, pred, answer)["correct_lenient"] is verdict


# --- L1-L3: LHRS-Bench ---------------------------------------------------------------------------------------------

LHRS_CASES = [
    # (prediction, ground truth, reference verdict)
    ("B", "B", True),
    ("b", "B", True),
    ("B.", "B", True),                                   # L1 cut at "."
    ("B. forest", "B", True),
    ("B forest", "B", False),                            # "bforest" not in "b"
    ("B forest", "B. forest", True),                     # truth "bforest"
    ("forest", "B. forest", True),
    ("B\n", "B", False),                                 # L2: "b\n" not in "b" (classification strips; LHRS not)
    ("\nB", "B", False),
    ("\tB", "B", False),
    ("B\n", "B\n", True),
    (" B ", "B", True),                                  # spaces removed
    ("The answer is B", "B", False),                     # strict accepts it
    ("(B)", "B", False),                                 # "(b)"; strict accepts it
    ("B,", "B", False),                                  # no "," cut for LHRS ("b," not in "b")
    ("", "B", True),
    (None, "B", False),                                  # "none"
    ("A", "B", False),
    ("A", "A. B", True),                                 # truth "ab"
    ("B", "A. B", True),
    ("AB", "A. B", True),
    (".B", "B", True),                                   # L1 -> ""
    ("B", "b.", True),                                   # truth "b"
    ("b.c", "bc", True),                                 # L1 -> "b"
    ("<reasoning>r</reasoning><answer>B</answer>", "B", True),
    ("<reasoning>r</reasoning><answer>B\n</answer>", "B", False),
    ("<reasoning>r</reasoning>\nB", "B", False),         # "\nB" (strict strips it: correct)
    ("<reasoning>r</reasoning> B", "B", True),
    ("<answer>B</answer>\n", "B", True),                 # R3 cut at </answer>
    ("<answer>B</answer>C", "B", True),
    ("<answer>C</answer><reasoning>r</reasoning>", "B", True),                    # -> ""
    ("<reasoning>a</reasoning><reasoning>b</reasoning><answer>C</answer>", "B", True),  # -> ""
    ("<reasoning>a<reasoning>b</reasoning>c</reasoning><answer>C</answer>", "B", False),  # nested -> "C"
    ("<reasoning>r", "B", False),
    ("<answer>C</answer><answer>B</answer>", "B", False),  # first block
]


@pytest.mark.parametrize("pred, answer, verdict", LHRS_CASES)
def test_lhrs(pred, answer, verdict):
    assert reference_lhrs_match(pred, answer) is verdict
    assert scored(LHRS, pred, answer, type=[1])["correct_lenient"] is verdict


# --- G1-G8: grounding ----------------------------------------------------------------------------------------------

GT = "[[100, 100, 300, 300]]"            # 200 x 200 = 40000 px: large
ONE = [(1.0, True, "large")]
MISS0 = [(0.0, False, "large")]
NONE: list = []                           # adds nothing to the denominator

GROUNDING = [
    # (prediction, ground truth, size [w, h], pairs (iou, hit, bucket)); size 1000 x 1000: grid = pixels
    ("[[100, 100, 300, 300]]", GT, [1000, 1000], ONE),
    ("[[100 100 300 300]]", GT, [1000, 1000], ONE),                  # G3 spaces accepted
    ("[[100,100,300,300]]", GT, [1000, 1000], ONE),
    ("[[100, ,100,,300\n300]]", GT, [1000, 1000], ONE),              # any run of commas and whitespace
    ("the roof [[100, 100, 300, 300]] here", GT, [1000, 1000], ONE),
    ("[[[100, 100, 300, 300]]]", GT, [1000, 1000], ONE),             # match found from the 2nd "["
    ("[[-100, 100, 300, 300]]", GT, [1000, 1000], NONE),              # G3 negative: no match
    ("[[100, 100, -300, 300]]", GT, [1000, 1000], NONE),
    ("[[100.0, 100, 300, 300]]", GT, [1000, 1000], NONE),             # G3 decimal: no match
    ("[[100, 100, 300, 300.5]]", GT, [1000, 1000], NONE),
    ("[100, 100, 300, 300]", GT, [1000, 1000], NONE),                 # single brackets
    ("[[ 100, 100, 300, 300]]", GT, [1000, 1000], NONE),              # space after [[
    ("[[100, 100, 300, 300 ]]", GT, [1000, 1000], NONE),              # space before ]]
    ("[[100, 100, 300, 300], [0, 0, 10, 10]]", GT, [1000, 1000], NONE),  # a list of lists: no "]]" after 4 numbers
    ("<|box_start|>(100,100),(300,300)<|box_end|>", GT, [1000, 1000], NONE),  # strict reads these two
    ('{"bbox_2d": [100, 100, 300, 300]}', GT, [1000, 1000], NONE),
    ("the red roof", GT, [1000, 1000], NONE),
    ("", GT, [1000, 1000], NONE),
    (None, GT, [1000, 1000], NONE),                                   # "None"
    ("[[300, 300, 100, 100]]", GT, [1000, 1000], MISS0),              # reversed: empty intersection (strict: 1.0)
    ("[[100, 100, 100, 300]]", GT, [1000, 1000], MISS0),              # degenerate prediction
    ("[[300, 100, 500, 300]]", GT, [1000, 1000], MISS0),              # touching edges: intersection width 0
    ("[[500, 500, 600, 600]]", GT, [1000, 1000], MISS0),              # disjoint
    # no clipping: [600,600,1400,1400] vs [600,600,1000,1000]: 400² / 800² = 0.25 (strict clips: 1.0)
    ("[[600, 600, 1400, 1400]]", "[[600, 600, 1000, 1000]]", [1000, 1000], [(0.25, False, "large")]),
    # threshold G7: 125000 / 250000 = 0.5 hit; 124500 / 250000 = 0.498 and 120000 / 250000 = 0.48 misses
    ("[[0, 0, 250, 500]]", "[[0, 0, 500, 500]]", [1000, 1000], [(0.5, True, "large")]),
    ("[[0, 0, 249, 500]]", "[[0, 0, 500, 500]]", [1000, 1000], [(0.498, False, "large")]),
    ("[[0, 0, 240, 500]]", "[[0, 0, 500, 500]]", [1000, 1000], [(0.48, False, "large")]),
    # partial overlap: [150,150,350,350] vs GT: inter 150² = 22500, union 2*40000 - 22500 = 57500
    ("[[150, 150, 350, 350]]", GT, [1000, 1000], [(22500 / 57500, False, "large")]),
    # G5 scaling: 800 x 800, grid [100,100,300,300] -> px [80,80,240,240]
    ("[[100, 100, 300, 300]]", "[[80, 80, 240, 240]]", [800, 800], [(1.0, True, "large")]),
    # ... vs [100,100,300,300] px: inter 140² = 19600, union 160² + 200² - 19600 = 46000
    ("[[100, 100, 300, 300]]", GT, [800, 800], [(19600 / 46000, False, "large")]),
    # 800 x 800, IoU 0.5: grid [0,0,250,500] -> px [0,0,200,400] vs [0,0,400,400]: 80000 / 160000
    ("[[0, 0, 250, 500]]", "[[0, 0, 400, 400]]", [800, 800], [(0.5, True, "large")]),
    # G5 computed as x * w / 1000 (one rounding; §9 does not fix the order, we pin ours): on 700 x 700,
    # 45 * 700 / 1000 = 31.5 exactly, 50 -> 35; vs [0,0,63,35]: 1102.5 / 2205 = 0.5: a hit (area 2205: medium).
    # x * (w / 1000) gives 31.499999999999996 and a miss.
    ("[[0, 0, 45, 50]]", "[[0, 0, 63, 35]]", [700, 700], [(0.5, True, "medium")]),
    # G5 [w, h]: 1000 x 200; grid [100,100,600,900] -> px [100,20,600,180]; no coordinate is 0, so x1 (or any
    # corner) scaled by the wrong side breaks it
    ("[[100, 100, 600, 900]]", "[[100, 20, 600, 180]]", [1000, 200], [(1.0, True, "large")]),
    # ... read as 200 x 1000 it is px [20,100,120,900]: inter 20 x 80 = 1600, union 2 * 80000 - 1600
    ("[[100, 100, 600, 900]]", "[[100, 20, 600, 180]]", [200, 1000], [(1600 / 158400, False, "large")]),
    # G2 ground truth forms
    ("[[100, 100, 300, 300]]", "[[100,100,300,300]]", [1000, 1000], ONE),
    ("[[100, 100, 300, 300]]", "[100, 100, 300, 300]", [1000, 1000], ONE),
    ("[[100, 100, 300, 300]]", "[[100 ,100, 300, 300]]", [1000, 1000], NONE),   # space before a comma
    ("[[100, 100, 300, 300]]", "[[100 100 300 300]]", [1000, 1000], NONE),       # no commas
    ("[[100, 100, 300, 300]]", "[[100.5, 100, 300, 300]]", [1000, 1000], NONE),  # decimal
    ("[[100, 100, 300, 300]]", "[[ 100, 100, 300, 300]]", [1000, 1000], NONE),
    ("[[100, 100, 300, 300]]", "the roof", [1000, 1000], NONE),
    ("[[300, 300, 100, 100]]", "[[300, 300, 100, 100]]", [1000, 1000], [(0.0, False, "large")]),  # reversed GT:
    # intersection empty; area (100-300)*(100-300) = 40000
    ("[[100, 100, 100, 300]]", "[[100, 100, 100, 300]]", [1000, 1000], [(0.0, False, "small")]),  # area 0
    # G4 pairing in order
    ("[[0, 0, 100, 100]]", "[[0, 0, 100, 100]] [[200, 200, 230, 230]]", [1000, 1000], [(1.0, True, "large")]),
    ("[[0, 0, 100, 100]] [[200, 200, 230, 230]]", "[[0, 0, 100, 100]], [[200, 200, 230, 230]]", [1000, 1000],
     [(1.0, True, "large"), (1.0, True, "small")]),                   # 10000 px large, 900 px small
    ("[[200, 200, 230, 230]] [[0, 0, 100, 100]]", "[[0, 0, 100, 100]], [[200, 200, 230, 230]]", [1000, 1000],
     [(0.0, False, "large"), (0.0, False, "small")]),                 # swapped: each pairs with the other
    ("[[500, 500, 600, 600]] [[100, 100, 300, 300]]", GT, [1000, 1000], MISS0),  # 2nd box ignored
    ("[[100, 100, 300, 300]][[0, 0, 50, 50]]", GT, [1000, 1000], ONE),
    ("[[0 0 100 100]]", "[[0, 0, 100, 100]] [[200, 200, 230, 230]]", [1000, 1000], [(1.0, True, "large")]),
    ("no box", "[[0, 0, 100, 100]] [[200, 200, 230, 230]]", [1000, 1000], NONE),
    # G8 size buckets, inclusive upper bounds
    ("[[0, 0, 32, 32]]", "[[0, 0, 32, 32]]", [1000, 1000], [(1.0, True, "small")]),    # 1024 (strict: medium)
    ("[[0, 0, 16, 64]]", "[[0, 0, 16, 64]]", [1000, 1000], [(1.0, True, "small")]),    # 1024
    ("[[0, 0, 31, 33]]", "[[0, 0, 31, 33]]", [1000, 1000], [(1.0, True, "small")]),    # 1023
    ("[[0, 0, 33, 32]]", "[[0, 0, 33, 32]]", [1000, 1000], [(1.0, True, "medium")]),   # 1056
    ("[[0, 0, 96, 96]]", "[[0, 0, 96, 96]]", [1000, 1000], [(1.0, True, "medium")]),   # 9216 (strict: large)
    ("[[0, 0, 97, 96]]", "[[0, 0, 97, 96]]", [1000, 1000], [(1.0, True, "large")]),    # 9312
    ("[[0, 0, 1, 1]]", "[[0, 0, 32, 32]]", [1000, 1000], [(1 / 1024, False, "small")]),  # bucket of the truth
    # tags (R1-R3, G1)
    ("<reasoning>the roof</reasoning><answer>[[100, 100, 300, 300]]</answer>", GT, [1000, 1000], ONE),
    ("<reasoning>[[100, 100, 300, 300]]</reasoning><answer>not sure</answer>", GT, [1000, 1000], NONE),
    ("<answer>[[500, 500, 600, 600]]</answer><answer>[[100, 100, 300, 300]]</answer>", GT, [1000, 1000], MISS0),
    ("<reasoning>a</reasoning><reasoning>b</reasoning><answer>[[100, 100, 300, 300]]</answer>", GT, [1000, 1000],
     NONE),                                                           # extracted ""
    ("<answer>[[100, 100, 300, 300]]</answer><reasoning>r</reasoning>", GT, [1000, 1000], NONE),
    ("<reasoning>a<reasoning>b</reasoning>c</reasoning><answer>[[100, 100, 300, 300]]</answer>", GT, [1000, 1000],
     ONE),                                                            # nested: whole text, then the answer
    ("<reasoning>unclosed [[100, 100, 300, 300]]", GT, [1000, 1000], ONE),  # whole text kept (strict: no answer)
    ("<answer>[[100, 100, 300, 300]]", GT, [1000, 1000], ONE),
    ("<answer>none</answer> [[100, 100, 300, 300]]", GT, [1000, 1000], NONE),  # cut at </answer>
    (" \n [[100, 100, 300, 300]] \n", GT, [1000, 1000], ONE),
]


@pytest.mark.parametrize("pred, answer, size, expected", GROUNDING)
def test_grounding_pairs(pred, answer, size, expected):
    pairs = reference_grounding_pairs(pred, answer, size)
    assert [(pair.hit, pair.bucket) for pair in pairs] == [(hit, bucket) for _, hit, bucket in expected]
    assert [pair.iou for pair in pairs] == pytest.approx([iou for iou, _, _ in expected], abs=1e-12)


@pytest.mark.parametrize("pred, answer, size, expected",
                         [case for case in GROUNDING if ground_truth_problem(VG, case[1], case[2], None) is None])
def test_grounding_through_score_row(pred, answer, size, expected):
    # Every case whose ground truth the eval accepts (a box with an area, in any form) runs through score_row.
    row = scored(VG, pred, answer, size=size)
    assert [(p["hit"], p["bucket"]) for p in row["lenient_pairs"]] == [(hit, bucket) for _, hit, bucket in expected]
    assert row["correct_lenient"] == (sum(hit for _, hit, _ in expected) if expected else None)


def test_exact_iou_values_at_the_threshold():
    # Exactly 0.5 in floating point too: the verdicts at the boundary do not depend on rounding.
    assert reference_iou((0.0, 0.0, 250.0, 500.0), (0.0, 0.0, 500.0, 500.0)) == 0.5
    assert reference_iou((0 * 800 / 1000, 0.0, 250 * 800 / 1000, 500 * 800 / 1000), (0, 0, 400, 400)) == 0.5


@pytest.mark.parametrize("area, bucket", [
    (0, "small"), (-5, "small"), (1023, "small"), (1024, "small"), (1024.5, "medium"), (1025, "medium"),
    (9215, "medium"), (9216, "medium"), (9216.01, "large"), (9217, "large"), (10**9, "large"),
])
def test_reference_size_bucket(area, bucket):
    assert reference_size_bucket(area) == bucket


def test_grid_ground_truth_is_compared_in_pixels():
    # answer_boxes: normalized (not a reference case): truth [[0,0,100,100]] on a 640 x 480 image is 64 x 48 px
    # = 3072: medium; the same prediction gives IoU 1.
    row = scored(VG_GRID, "[[0, 0, 100, 100]]", "[[0, 0, 100, 100]]", size=[640, 480])
    assert row["lenient_pairs"] == [{"iou": 1.0, "hit": True, "bucket": "medium"}]
    # 32 x 32 px exactly: grid [[0, 0, 50, 50]] of a 640 x 640 image -> small (strict: medium)
    row = scored(VG_GRID, "[[0, 0, 50, 50]]", "[[0, 0, 50, 50]]", size=[640, 640])
    assert row["lenient_pairs"][0]["bucket"] == "small" and row["bucket"] == "medium"


def test_hostile_numbers_do_not_crash():
    huge = "[[0, 0, " + "9" * 5000 + ", 300]]"   # past Python's 4300-digit int() limit
    (pair,) = reference_grounding_pairs(huge, "[[0, 0, 300, 300]]", [800, 800])
    assert pair.hit is False and pair.iou == 0.0


# --- aggregates: denominators, buckets, per type ---------------------------------------------------------------------

def test_grounding_aggregate_hand_computed():
    size = [1000, 1000]
    rows = [
        scored(VG, "[[0, 0, 32, 32]]", "[[0, 0, 32, 32]]", size=size),          # L (1, hit, small)     S hit medium
        scored(VG, "[[0, 0, 96, 96]]", "[[0, 0, 96, 96]]", size=size),          # L (1, hit, medium)    S hit large
        scored(VG, "no box", "[[0, 0, 200, 200]]", size=size),                  # L nothing             S miss large
        scored(VG, "[[200, 200, 0, 0]]", "[[0, 0, 200, 200]]", size=size),      # L (0, miss, large)    S hit large
        scored(VG, "[[0 0 100 200]]", "[[0, 0, 200, 200]]", size=size),         # L (0.5, hit, large)   S hit large
        scored(VG, "[[0, 0, 10, 10]] [[50, 50, 60, 60]]",                       # L (1, hit, small),    S hit small
               "[[0, 0, 10, 10]] [[500, 500, 600, 600]]", size=size),           #   (0, miss, large)
    ]
    result = aggregate(VG, rows)
    metrics = result["metrics"]
    assert metrics["precision@0.5"] == {"value": 5 / 6, "n": 6, "correct": 5}
    assert metrics["precision@0.5_small"] == {"value": 1.0, "n": 1, "correct": 1}
    assert metrics["precision@0.5_medium"] == {"value": 1.0, "n": 1, "correct": 1}
    assert metrics["precision@0.5_large"] == {"value": 3 / 4, "n": 4, "correct": 3}
    assert metrics["precision@0.5_lenient"] == {"value": 4 / 6, "n": 6, "correct": 4}
    assert metrics["precision@0.5_lenient_small"] == {"value": 1.0, "n": 2, "correct": 2}
    assert metrics["precision@0.5_lenient_medium"] == {"value": 1.0, "n": 1, "correct": 1}
    assert metrics["precision@0.5_lenient_large"] == {"value": 1 / 3, "n": 3, "correct": 1}
    assert metrics["no_box_rate"] == {"value": 1 / 6, "n": 6, "count": 1}
    assert (result["n_lenient"], result["correct_lenient"]) == (6, 4)
    assert [row["correct_lenient"] for row in rows] == [1, 1, None, 0, 1, 1]


def test_boxless_predictions_inflate_only_the_lenient_precision():
    # §3.4: one hit and nine completions without a box the reference reads -> reference 1/1, strict 1/10.
    rows = [scored(VG, "[[100, 100, 300, 300]]", GT, size=[1000, 1000])]
    rows += [scored(VG, pred, GT, size=[1000, 1000]) for pred in
             ["", None, "roof", "[[-1, 100, 300, 300]]", "[[100.5, 100, 300, 300]]", "[100, 100, 300, 300]",
              "<|box_start|>(100,100),(300,300)<|box_end|>", "<reasoning>a</reasoning><reasoning>b</reasoning>"
              "<answer>[[100, 100, 300, 300]]</answer>", "<answer>no</answer>[[100, 100, 300, 300]]"]]
    metrics = aggregate(VG, rows)["metrics"]
    assert metrics["precision@0.5_lenient"] == {"value": 1.0, "n": 1, "correct": 1}
    # strict reads five of them as hits: [-1, ...] clipped to [0, 100, 300, 300] (IoU 40000/60000), the decimal
    # box (IoU 0.9975), the bare list, the Qwen box and the answer block after two reasoning blocks; the
    # "no" answer block holds no box.
    assert metrics["precision@0.5"] == {"value": 6 / 10, "n": 10, "correct": 6}
    assert all(metrics[f"precision@0.5_lenient_{b}"]["n"] == 0 for b in ("small", "medium"))
    # no_box_rate is the strict parser's: "", None, "roof" and the "no" answer block hold no box it reads
    assert metrics["no_box_rate"] == {"value": 4 / 10, "n": 10, "count": 4}


def test_empty_grounding_task():
    metrics = aggregate(VG, [])["metrics"]
    assert metrics["precision@0.5_lenient"] == {"value": None, "n": 0, "correct": 0}
    assert metrics["precision@0.5_lenient_small"] == {"value": None, "n": 0, "correct": 0}


def test_closed_aggregate_hand_computed():
    preds = ["forest", "for", "", None, "<reasoning>a</reasoning><reasoning>b</reasoning><answer>desert</answer>",
             "<answer>desert</answer><answer>forest</answer>", "dense forest", "Forest."]
    # lenient: T, T, T, F ("none"), T (extracted ""), F (first block "desert"), F, T -> 5 of 8
    # strict:  T, F, F, F, F (answer block "desert"), T (last block "forest"), F, T -> 3 of 8
    rows = [scored(CLS, pred, "forest") for pred in preds]
    result = aggregate(CLS, rows)
    assert [row["correct_lenient"] for row in rows] == [True, True, True, False, True, False, False, True]
    assert result["metrics"]["accuracy_lenient"] == {"value": 5 / 8, "n": 8, "correct": 5}
    assert result["metrics"]["accuracy"] == {"value": 3 / 8, "n": 8, "correct": 3}


def test_lhrs_aggregate_overall_and_per_type():
    rows = [scored(LHRS, "B\n", "B", type=[2]),             # L F (strict T)
            scored(LHRS, "B", "B", type=[2, 3]),            # L T
            scored(LHRS, "", "C", type=[3]),                # L T (strict F)
            scored(LHRS, None, "A", type=[3, 11]),          # L F
            scored(LHRS, "(A)", "A", type=[11])]            # L F (strict T)
    metrics = aggregate(LHRS, rows)["metrics"]
    assert metrics["accuracy_lenient"] == {"value": 2 / 5, "n": 5, "correct": 2}
    assert metrics["accuracy"] == {"value": 3 / 5, "n": 5, "correct": 3}
    names = {type_id: name for type_id, name in LHRS_TYPES.items()}
    assert metrics[f"accuracy_lenient_{names[2]}"] == {"value": 0.5, "n": 2, "correct": 1}
    assert metrics[f"accuracy_lenient_{names[3]}"] == {"value": 2 / 3, "n": 3, "correct": 2}
    assert metrics[f"accuracy_lenient_{names[11]}"] == {"value": 0.0, "n": 2, "correct": 0}
    assert metrics[f"accuracy_lenient_{names[1]}"] == {"value": None, "n": 0, "correct": 0}
    assert metrics[f"accuracy_{names[11]}"] == {"value": 0.5, "n": 2, "correct": 1}


def test_rescoring_saved_rows_reads_null_as_none():
    rows = [{"index": 0, "pred": None, "answer": "none"}, {"index": 1, "pred": None, "answer": "forest"}]
    document = score_predictions(CLS, rows, CHAT)
    assert document["metrics"]["accuracy_lenient"] == {"value": 0.5, "n": 2, "correct": 1}
    assert document["metrics"]["accuracy"]["correct"] == 0


def test_every_rule_is_documented():
    doc = lenient.__doc__
    for rule in ["R1", "R2", "R3", "C1", "C2", "C3", "C4", "L1", "L2", "L3"] + [f"G{i}" for i in range(1, 9)]:
        assert f"  {rule}. " in doc, rule


# --- pinned by mutation testing (bench/mutation.py): each case kills a surviving mutant ------------------------------

def test_ground_truth_is_read_as_text():
    # C1/L2 read str(answer): a ground truth stored as a JSON number is its text
    assert reference_closed_match("3", 3) is True
    assert reference_closed_match("4", 3) is False
    assert reference_lhrs_match("3", 3) is True


def test_truth_boxes_are_read_from_the_answer_as_text():
    # G2 runs on str(answer): a ground truth stored as a JSON list [[x1, y1, x2, y2]] prints as that text
    assert lenient.reference_truth_boxes([[10, 20, 30, 40]]) == [(10.0, 20.0, 30.0, 40.0)]


def test_degenerate_intersection_is_zero_even_without_a_union():
    # G6: x2 <= x1 or y2 <= y1 gives 0 before any division; two identical lines have no union at all
    assert reference_iou((5, 5, 5, 9), (5, 5, 5, 9)) == 0.0
    assert reference_iou((5, 5, 9, 5), (5, 5, 9, 5)) == 0.0
