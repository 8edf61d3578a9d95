"""The reference evaluator's scoring rules, kept only as a compatibility column (REFERENCE.md §3.5, §3.4).

These rules are wrong on purpose here, so our numbers can be compared with published ones:
the prediction is cut at the first ``.`` (and ``,`` for classification/VQA), spaces are removed, and it
counts as correct when it is a *substring* of the answer. So an empty prediction is always correct,
and ``for`` is a correct answer to ``forest``. The strict scores in ``scoring.py`` are the real ones.
"""
from __future__ import annotations


def reference_answer_text(completion: str, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> str:
    """The reference's answer extraction: after ``</reasoning>`` when closed, then inside ``<answer>`` when opened."""
    prediction = str(completion)
    open_r, close_r = f"<{reasoning_tag}>", f"</{reasoning_tag}>"
    if open_r in prediction:
        after_open = prediction.split(open_r, 1)[1]
        if close_r in after_open:  # the reference's split raised (and kept the whole text) otherwise
            prediction = after_open.split(close_r)[1]
    open_a, close_a = f"<{answer_tag}>", f"</{answer_tag}>"
    if open_a in prediction:
        prediction = prediction.split(open_a)[1].split(close_a)[0]
    return prediction


def _lower_no_spaces(text: str) -> str:
    return text.replace(" ", "").strip().lower()


def reference_closed_match(completion: str, answer: str, reasoning_tag: str = "reasoning",
                           answer_tag: str = "answer") -> bool:
    """Classification / VQA: cut at the first ``.`` then ``,``; correct if a substring of the answer."""
    prediction = reference_answer_text(completion, reasoning_tag, answer_tag).replace(" ", "")
    prediction = prediction.split(".")[0].split(",")[0]
    return _lower_no_spaces(prediction) in _lower_no_spaces(str(answer))


def reference_lhrs_match(completion: str, answer: str, reasoning_tag: str = "reasoning",
                         answer_tag: str = "answer") -> bool:
    """LHRS-Bench: cut at the first ``.``, drop dots from the answer; correct if a substring of it."""
    prediction = reference_answer_text(completion, reasoning_tag, answer_tag).split(".")[0]
    return _lower_no_spaces(prediction) in _lower_no_spaces(str(answer).replace(".", ""))
