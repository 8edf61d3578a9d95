"""Every reward by name, with its declared range: the names ``grpo.rewards.by_answer_type`` may use.

A scorer takes a batch, ``scorer(completions, samples) -> list[float]``, aligned one to one, so rewards
that call a model or a server (SBERT, the judge) see the whole batch at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from tinyrs.grpo.rewards.boxes import box_iou_reward, detection_f1_reward, detection_reward
from tinyrs.grpo.rewards.closed import closed_reward, label_recall_reward
from tinyrs.grpo.rewards.inputs import Completion, Sample
from tinyrs.grpo.rewards.judge import Judge
from tinyrs.grpo.rewards.text import hslr_rewards, jaccard_reward, levenshtein_reward, lmgr_reward, sbert_rewards
from tinyrs.settings import GrpoSettings

Scorer = Callable[[Sequence[Completion], Sequence[Sample]], list[float]]


@dataclass(frozen=True)
class RewardSpec:
    """``build(grpo_settings)`` makes the scorer; ``needs_truth_boxes``: the solution answer must hold boxes."""

    name: str
    low: float
    high: float
    needs_truth_boxes: bool
    build: Callable[[GrpoSettings], Scorer]


def _answer_vs_truth(reward: Callable[[str | None, str], float]) -> Callable[[GrpoSettings], Scorer]:
    def scorer(completions: Sequence[Completion], samples: Sequence[Sample]) -> list[float]:
        return [reward(c.answer, s.answer) for c, s in zip(completions, samples, strict=True)]

    return lambda settings: scorer


def _batch_answer_vs_truth(rewards: Callable[[list, list], list[float]]) -> Callable[[GrpoSettings], Scorer]:
    def scorer(completions: Sequence[Completion], samples: Sequence[Sample]) -> list[float]:
        return rewards([c.answer for c in completions], [s.answer for s in samples])

    return lambda settings: scorer


def _format_scorer(completions: Sequence[Completion], samples: Sequence[Sample]) -> list[float]:
    return [1.0 if c.well_formed else 0.0 for c in completions]


REWARDS: dict[str, RewardSpec] = {
    spec.name: spec
    for spec in (
        RewardSpec("format", 0.0, 1.0, False, lambda settings: _format_scorer),
        RewardSpec("closed", 0.0, 1.0, False, _answer_vs_truth(closed_reward)),
        RewardSpec("recall", 0.0, 1.0, False, _answer_vs_truth(label_recall_reward)),
        RewardSpec("box_iou", 0.0, 1.0, True, _answer_vs_truth(box_iou_reward)),
        RewardSpec("detection", 0.0, 1.0, True, _answer_vs_truth(detection_reward)),
        RewardSpec("detection_f1", 0.0, 1.0, True, _answer_vs_truth(detection_f1_reward)),
        RewardSpec("levenshtein", 0.0, 1.0, False, _answer_vs_truth(levenshtein_reward)),
        RewardSpec("jaccard", 0.0, 1.0, False, _answer_vs_truth(jaccard_reward)),
        RewardSpec("lmgr", 0.0, 1.0, True, _answer_vs_truth(lmgr_reward)),
        RewardSpec("sbert", 0.0, 1.0, False, _batch_answer_vs_truth(sbert_rewards)),
        RewardSpec("hslr", 0.0, 1.0, False, _batch_answer_vs_truth(hslr_rewards)),
        RewardSpec("judge", 0.0, 1.0, False, lambda settings: Judge(settings.judge)),
    )
}
