"""Rewards for closed answers: one class / yes-no / count, and multi-label classification."""
from __future__ import annotations

from tinyrs.answers import closed_answers_match, split_labels


def closed_reward(prediction: str | None, truth: str) -> float:
    """1.0 if the answer matches the truth after normalisation, else 0.0. Range [0, 1].

    Normalisation is ``tinyrs.answers.closed_answers_match`` (shared with evaluation): case, surrounding
    punctuation and a leading article ignored, yes/no synonyms equal, numbers compared as numbers.
    An empty or missing answer scores 0 (the reference's substring match scored it correct).
    """
    return 1.0 if closed_answers_match(prediction, truth) else 0.0


def label_recall_reward(prediction: str | None, truth: str) -> float:
    """Multi-label recall TP / (TP + FN) (GeoVLM-R1), guarded against listing every class. Range [0, 1].

    Labels are split by ``tinyrs.answers.split_labels`` (commas, semicolons, "and") and compared after
    normalisation. Guard: when the answer names more labels than the truth holds, the recall is multiplied
    by the precision TP / (number predicted), so an answer listing all C classes for G true labels scores
    G / C instead of 1. Answers with at most as many labels as the truth keep plain recall.

    Why this guard: the paper gives recall alone and says nothing of a guard (its code is unpublished;
    REFERENCE.md §4, §10); its reviewers noted that recall alone is won by listing every class. Multiplying by
    precision only past the truth's length keeps the paper's reward wherever the answer could be right (a
    correct answer still scores exactly its recall) and makes every surplus label cost, with no tuned constant.
    """
    predicted, gold = split_labels(prediction), split_labels(truth)
    if not predicted or not gold:
        return 0.0
    true_positives = len(set(predicted) & set(gold))
    recall = true_positives / len(gold)
    if len(predicted) > len(gold):
        return recall * true_positives / len(predicted)
    return recall
