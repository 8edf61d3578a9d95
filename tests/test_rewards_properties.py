"""Property tests: random and adversarial completions never make a reward raise or leave its range.

The model- and server-backed rewards (sbert, hslr, judge) are covered in their own files; every other
registered reward runs here on thousands of generated completions.
"""
import math
import time
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tinyrs.answers import canonical_box
from tinyrs.config import load_config, typed_stage_settings
from tinyrs.grpo.rewards import REWARDS, make_reward_functions
from tinyrs.grpo.rewards.boxes import box_iou_reward
from tinyrs.grpo.rewards.inputs import Sample, read_completion
from tinyrs.grpo.rewards.text import lcs_length

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
GRPO = typed_stage_settings(load_config([CONFIG]), "grpo")
LOCAL_REWARDS = [name for name in REWARDS if name not in ("sbert", "hslr", "judge")]
TEXT_TRUTHS = ["harbor", "yes", "3", "forest, river and beach", "a small white boat near the pier"]
BOX_TRUTHS = ["[[0, 0, 100, 100]]", "a tank [[120, 40, 360, 280]] and a ship [[500, 500, 990, 990]]"]
FRAGMENTS = [
    "<reasoning>", "</reasoning>", "<answer>", "</answer>", "<reasoning><reasoning>", "</answer></answer>",
    "[[", "]]", "[", "]", ",", ", ", " ", "\n", "(", ")", "<|box_start|>", "<|box_end|>", '{"bbox_2d": [', '"bbox_2d"',
    "nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "9" * 400, "0." + "0" * 300 + "1",
    "-5", "0", "1000", "1001", "500.5", "-0", "+7", "[[0, 0, 1000, 1000]]", "[[1,2,3,4]]", "[[-5, 2000, 3, -1]]",
    "[[nan, 1, 2, 3]]", "[[10, 10, 10, 10]]", "<|box_start|>(1e9,2),(3,4)<|box_end|>",
    "yes", "No.", "and", ";", "harbor", "forest", "the", "é", "\u202e", "\x00", "\ud7ff", "🛰️", "ß", "İ", "\u0301",
]
completions = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4), st.integers().map(str)), max_size=50)
    .map("".join),
)


def _in_range(name: str, value: float) -> bool:
    spec = REWARDS[name]
    return isinstance(value, float) and math.isfinite(value) and spec.low <= value <= spec.high


def _score_everything(text: str) -> None:
    completion = read_completion(text, "reasoning", "answer")
    for name in LOCAL_REWARDS:
        truths = BOX_TRUTHS if REWARDS[name].needs_truth_boxes else TEXT_TRUTHS
        samples = [Sample("1", truth, "question?", None) for truth in truths]
        values = REWARDS[name].build(GRPO)([completion] * len(samples), samples)
        assert len(values) == len(samples)
        assert all(_in_range(name, v) for v in values), (name, text, values)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completions)
@example("")
@example("<reasoning><answer>x</answer></reasoning><answer><reasoning>y</reasoning></answer>")
@example("<answer>" + "[[" * 5000 + "</answer>")
@example("<answer>" + "9" * 5000 + "</answer>")
def test_local_rewards_never_raise_and_stay_in_range(text):
    _score_everything(text)


def test_ten_thousand_boxes_are_scored_quickly_and_guarded():
    spam = "<reasoning>everywhere</reasoning><answer>" + "[[0, 0, 1000, 1000]] " * 10_000 + "</answer>"
    started = time.perf_counter()
    _score_everything(spam)
    assert time.perf_counter() - started < 20
    completion = read_completion(spam, "reasoning", "answer")
    detection = REWARDS["detection"].build(GRPO)([completion], [Sample("2", BOX_TRUTHS[0], "", None)])[0]
    f1 = REWARDS["detection_f1"].build(GRPO)([completion], [Sample("2", BOX_TRUTHS[0], "", None)])[0]
    assert detection < 1e-4 and f1 == 0.0


_trl_functions = make_reward_functions(GRPO)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(completions, st.sampled_from(["1", "2"])), min_size=1, max_size=8))
def test_trl_functions_return_one_finite_value_per_completion(batch):
    texts = [[{"role": "assistant", "content": text}] for text, _ in batch]
    solutions = [[kind, "yes" if kind == "1" else BOX_TRUTHS[0], "q", ""] for _, kind in batch]
    for function in _trl_functions:
        values = function(prompts=[[]] * len(batch), completions=texts, completion_ids=[[]] * len(batch),
                          solution=solutions)
        assert len(values) == len(batch)
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcd", max_size=25), st.text(alphabet="abcd", max_size=25))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    assert lcs_length(a, b) == table[len(a)][len(b)]


boxes = st.tuples(*[st.integers(min_value=0, max_value=1000)] * 4)


@settings(max_examples=400, deadline=None)
@given(boxes)
def test_a_box_equal_to_the_truth_scores_one_in_any_corner_order(box):
    x1, y1, x2, y2 = box
    truth = f"[[{x1}, {y1}, {x2}, {y2}]]"
    reversed_corners = f"[[{x2}, {y2}, {x1}, {y1}]]"
    if canonical_box(tuple(map(float, box))) is None:
        return  # no area: not a valid ground truth
    assert box_iou_reward(reversed_corners, truth) == 1.0


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1).filter(lambda s: s.strip() and "<" not in s),
       st.text(min_size=1).filter(lambda s: s.strip() and "<" not in s))
def test_any_tag_free_blocks_are_well_formed(reasoning, answer):
    completion = read_completion(f"<reasoning>{reasoning}</reasoning><answer>{answer}</answer>", "reasoning", "answer")
    assert completion.well_formed
    assert completion.answer == answer.strip()
