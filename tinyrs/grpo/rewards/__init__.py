"""GRPO rewards: the reference recipe's (format, closed match, box IoU, LLM judge) with its defects fixed,
and GeoVLM-R1's task-aware rewards (recall, detection, Levenshtein, Jaccard, SBERT, LMGR, HSLR).

Every reward is named in ``registry.REWARDS`` with its declared range; ``combine`` turns the
``grpo.rewards`` mapping into the functions TRL's GRPOTrainer calls and checks the setup at start-up.
"""
from tinyrs.grpo.rewards.combine import (
    RewardSuite,
    check_ready,
    keeps_sample,
    make_reward_functions,
)
from tinyrs.grpo.rewards.registry import REWARDS, RewardSpec

__all__ = ["REWARDS", "RewardSpec", "RewardSuite", "check_ready", "keeps_sample", "make_reward_functions"]
