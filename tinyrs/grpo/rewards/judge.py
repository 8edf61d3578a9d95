"""LLM-judge reward for open-ended answers, over any OpenAI-compatible chat-completions server.

Each answer is scored 0-10 by the judge model from the question, the reference answer and (when the
solution carries one) the image as a base64 data URL; the reward is score / 10, range [0, 1].

Failure never stops training: a call that times out, fails (connection, HTTP status) or returns a reply
with no usable score is retried with exponential backoff up to ``max_retries`` times; if every attempt
fails the sample gets the configured fallback reward (``sbert``: SBERT similarity to the reference;
``zero``: 0.0). Failed attempts are counted by kind (``timeout``, ``connection``, ``http_error``,
``bad_reply``, ``other``) and fallbacks are counted, for logging.

Credentials: the API key is read only from the environment variable named by ``api_key_env`` and is
never logged or stored. A missing key is allowed only when ``base_url`` points at a server of one's own
(vLLM, lmdeploy: keyless); the OpenAI default (``base_url: null``) needs a key. Where the key may go is
checked before any call (``check_judge_endpoint``, rules in ``tinyrs.config.judge_problems``): https, or
plain http only to a loopback host or with ``allow_insecure_http``; only from an ``*_API_KEY`` variable or
one listed in ``allowed_key_envs``.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from tinyrs.config import ConfigError, judge_problems
from tinyrs.grpo.rewards.inputs import Completion, Sample
from tinyrs.settings import JudgeSettings

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
KEYLESS_PLACEHOLDER = "no-key"  # sent to keyless servers: the client library insists on some key
FAILURE_KINDS = ("timeout", "connection", "http_error", "bad_reply", "other")
DEFAULT_PROMPT = (
    "You are grading an answer to a question about a remote-sensing image.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Answer to grade: {answer}\n\n"
    "Judge how well the answer to grade agrees with the reference answer and the image, "
    "from 0 (wrong or unrelated) to 10 (correct and complete). "
    "Reply with the score as one integer, for example: Score: 7"
)
_START, _END = r"(?<!\d)(?<!\d\.)", r"(?!\d|\.\d)"  # a whole number: no digits or decimals attached
_EXPLICIT_SCORE = re.compile(
    rf"\b(?:score|rating|grade)\b\W{{0,5}}(?:is\W{{1,3}}|of\W{{1,3}})?(\d{{1,2}}){_END}", re.IGNORECASE
)
_OUT_OF_TEN = re.compile(rf"{_START}(\d{{1,2}})\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_INTEGER = re.compile(rf"{_START}(\d+){_END}")


def parse_judge_score(reply: str | None) -> int | None:
    """The integer score 0-10 in a judge's reply, or None when the reply holds none or is ambiguous.

    Looked for in order: an explicit ``Score: N`` (or rating/grade), then ``N/10`` or ``N out of 10``,
    then the only integer in the reply. A value outside 0-10 is no score.
    """
    if not reply:
        return None
    for pattern in (_EXPLICIT_SCORE, _OUT_OF_TEN):
        found = {int(value) for value in pattern.findall(reply)}
        if found:
            return found.pop() if len(found) == 1 and found <= set(range(11)) else None
    integers = {int(value) for value in _INTEGER.findall(reply[:10_000])}
    return integers.pop() if len(integers) == 1 and integers <= set(range(11)) else None


def check_judge_endpoint(judge_settings: JudgeSettings) -> None:
    """Raise ConfigError, naming the key, when the judge's key could be sent where it must not go."""
    problems = judge_problems(judge_settings)
    if problems:
        raise ConfigError("; ".join(f"grpo.judge.{key}: {message}" for key, message in problems))


def judge_unusable_reason(judge_settings: JudgeSettings) -> str | None:
    """Why the judge cannot be called with this configuration and environment, or None if it can."""
    if judge_settings.base_url is None and not os.environ.get(judge_settings.api_key_env):
        return (
            f"grpo.judge.base_url is null (the OpenAI API, which needs a key) and the environment variable "
            f"{judge_settings.api_key_env} (grpo.judge.api_key_env) is not set"
        )
    return None


class Judge:
    """Batch scorer ``judge(completions, samples) -> list[float]`` with bounded concurrency and counters.

    ``judge_settings`` is a GRPO stage's ``judge`` (its ``prompt_template``, when not null, uses the fields
    ``{question}``, ``{reference}`` and ``{answer}``). ``backoff_s`` is the first retry's delay; each further retry
    doubles it.
    """

    def __init__(self, judge_settings: JudgeSettings, backoff_s: float = 1.0):
        check_judge_endpoint(judge_settings)
        self.settings = judge_settings
        self.base_url = judge_settings.base_url
        self.model = judge_settings.model
        self.api_key_env = judge_settings.api_key_env
        self.timeout_s = float(judge_settings.timeout_s)
        self.max_retries = judge_settings.max_retries
        self.concurrency = judge_settings.concurrency
        self.fallback = judge_settings.fallback
        self.prompt_template = judge_settings.prompt_template or DEFAULT_PROMPT
        self.backoff_s = backoff_s
        self.failures: Counter[str] = Counter({kind: 0 for kind in FAILURE_KINDS})
        self.fallbacks = 0
        self.judged = 0
        self._lock = threading.Lock()
        self._client = None
        self._check_template()
        if self.fallback not in ("sbert", "zero"):
            raise ConfigError(f"grpo.judge.fallback must be 'sbert' or 'zero', got '{self.fallback}'")

    def _check_template(self) -> None:
        try:
            self.prompt_template.format(question="", reference="", answer="")
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(
                f"grpo.judge.prompt_template may only use {{question}}, {{reference}} and {{answer}} "
                f"(write literal braces as {{{{ }}}}): {err!r}"
            ) from None
        missing = [f for f in ("{question}", "{reference}", "{answer}") if f not in self.prompt_template]
        if missing:
            raise ConfigError(f"grpo.judge.prompt_template lacks {', '.join(missing)}")

    def client(self):
        """The OpenAI client, built on first use; retries are ours, so the library's own are off."""
        with self._lock:
            if self._client is None:
                reason = judge_unusable_reason(self.settings)
                if reason:
                    raise ConfigError(f"the LLM judge cannot be called: {reason}")
                from openai import OpenAI

                self._client = OpenAI(
                    api_key=os.environ.get(self.api_key_env) or KEYLESS_PLACEHOLDER,
                    base_url=self.base_url or OPENAI_BASE_URL,
                    timeout=self.timeout_s,
                    max_retries=0,
                )
            return self._client

    def __call__(self, completions: Sequence[Completion], samples: Sequence[Sample]) -> list[float]:
        answers = [c.answer.strip() if c.answer else "" for c in completions]
        rewards = [0.0] * len(answers)
        todo = [i for i, answer in enumerate(answers) if answer]  # an empty answer scores 0 without a call
        if not todo:
            return rewards
        client = self.client()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge") as pool:
            scores = list(pool.map(lambda i: self._judge_one(client, answers[i], samples[i]), todo))
        failed = [i for i, score in zip(todo, scores) if score is None]
        for i, score in zip(todo, scores):
            if score is not None:
                rewards[i] = score / 10
        if failed:
            fallback = self._fallback_rewards([answers[i] for i in failed], [samples[i] for i in failed])
            for i, value in zip(failed, fallback):
                rewards[i] = value
        with self._lock:
            self.judged += len(todo)
            self.fallbacks += len(failed)
        return rewards

    def _fallback_rewards(self, answers: list[str], samples: list[Sample]) -> list[float]:
        if self.fallback == "zero":
            return [0.0] * len(answers)
        from tinyrs.grpo.rewards.text import sbert_rewards

        return sbert_rewards(answers, [s.answer for s in samples])

    def messages(self, answer: str, sample: Sample) -> list[dict]:
        prompt = self.prompt_template.format(question=sample.question, reference=sample.answer, answer=answer)
        content: list[dict] = [{"type": "text", "text": prompt}]
        if sample.image_b64:
            url = sample.image_b64
            if not url.startswith("data:"):
                url = f"data:image/jpeg;base64,{url}"
            content.append({"type": "image_url", "image_url": {"url": url}})
        return [{"role": "user", "content": content}]

    def _judge_one(self, client, answer: str, sample: Sample) -> int | None:
        """The judge's score, or None after ``max_retries + 1`` failed attempts."""
        import openai

        messages = self.messages(answer, sample)
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            retryable = True
            try:
                response = client.chat.completions.create(model=self.model, messages=messages)
                score = parse_judge_score(response.choices[0].message.content)
                kind = None if score is not None else "bad_reply"
            except openai.APITimeoutError:
                kind = "timeout"
            except openai.APIConnectionError:
                kind = "connection"
            except openai.APIStatusError as err:
                kind = "http_error"
                retryable = err.status_code in (408, 409, 429) or err.status_code >= 500
            except (openai.APIResponseValidationError, ValueError, AttributeError, IndexError, KeyError, TypeError):
                kind = "bad_reply"  # a body that is not JSON, or JSON without choices[0].message.content
            except Exception as err:  # never let a judge problem stop training
                kind = "other"
                log.warning("judge call raised %s", type(err).__name__)
            if kind is None:
                return score
            with self._lock:
                self.failures[kind] += 1
            if not retryable:
                break
        log.warning("judge failed for one sample (last failure: %s); using the '%s' fallback", kind, self.fallback)
        return None

    def stats(self) -> dict[str, float]:
        """Counters since construction, keyed for logging (``judge/failed_<kind>``, ``judge/fallbacks``...)."""
        with self._lock:
            counters = {f"judge/failed_{kind}": float(n) for kind, n in self.failures.items()}
            counters["judge/judged"] = float(self.judged)
            counters["judge/fallbacks"] = float(self.fallbacks)
        return counters
