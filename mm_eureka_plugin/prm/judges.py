"""Answer judges for step labelling (kind ``judge``): is a rollout's final answer right?

A judge is ``judge(responses, gold, question=None) -> list[bool]`` with ``check_gold(gold) -> str | None``: why
problems with this gold answer cannot be judged (None when they can), so that such a problem is
reported and skipped rather than labelled from verdicts that mean nothing.

- ``math_verify`` (default): the ``accuracy`` reward (math-verify in bounded worker processes,
  multiple choice, the answer in ``<answer>`` tags); a gold answer math-verify cannot parse is
  refused.
- ``openai_compatible``: an LLM at an OpenAI-compatible ``/chat/completions`` endpoint the user
  runs (vLLM, SGLang, a hosted API) answers yes or no per response; each request has a timeout and
  is retried; an endpoint still failing after its retries raises :class:`JudgeUnavailable`.
  Logs and errors name the endpoint without credentials (:func:`redact_url`) and never hold the
  key or a reply's body; sending the key over plain ``http://`` to a host other than this machine
  is warned about once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

from mm_eureka_plugin.rewards.accuracy import AccuracyReward
from mm_eureka_plugin.rewards.types import RewardSample

logger = logging.getLogger(__name__)


class JudgeUnavailable(RuntimeError):
    """The judge cannot give verdicts (its endpoint is down after every retry)."""


def redact_url(url: str) -> str:
    """``url`` without a user name, password or query (where keys are often passed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost`` or a loopback address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MathVerifyJudge:
    """Judge by the accuracy reward (math-verify in bounded workers); takes the accuracy reward's parameters."""

    def __init__(self, **accuracy_params) -> None:
        self.accuracy = AccuracyReward(**{**accuracy_params, "on_bad_gold": "error"})

    def check_gold(self, gold: str) -> str | None:
        return self.accuracy.check_gold(gold)

    def __call__(self, responses: Sequence[str], gold: str, question: str | None = None) -> list[bool]:
        results = self.accuracy([RewardSample(response=response, label=gold) for response in responses])
        return [result.reward >= 1.0 for result in results]


JUDGE_PROMPT = (
    "Reference answer: {gold}\n\nSolution:\n{response}\n\n"
    "Is the final answer of the solution equivalent to the reference answer? Reply with yes or no only."
)
JUDGE_PROMPTS = {
    # The GPT-4o prompt of MM-Eureka's MMK12 evaluation (MM-EUREKA eval/mmk12/extract_calculate.py),
    # verbatim but for its placeholders' names.
    "mmk12": (
        "You are given a question, the correct answer and a model's answer. Please determine if the model's "
        "answer matches the correct answer.\nFocus only on the mathematical or semantic correctness of the "
        "content. Ignore any differences in formatting, such as LaTeX syntax, symbols, styles, or additional "
        "wrappers (e.g., \\boxed, $...$, or similar). Compare only the core mathematical or textual meaning "
        "of the model's answer and the correct answer.\nThe process or reasoning leading to the Solution is "
        "irrelevant, Only the correctness of the model's answer matters.\nReturn only \"Yes\" if the model's "
        'answer is correct or "No" if it is incorrect.\nOnly return "Yes" or "No" with no additional '
        "text or formatting.\n\nQuestion:\n{question}\n--------------------------------\nCorrect Answer:\n"
        "{gold}\n--------------------------------\nModel's Answer:\n{response}\n"
        "--------------------------------\n"
    ),
}
"""Named prompts for ``openai_compatible``'s ``prompt`` parameter."""


class OpenAICompatibleJudge:
    """Judge by an LLM at an OpenAI-compatible endpoint: ``url`` (``.../v1``) + ``/chat/completions``.

    ``model`` the served model's name; ``api_key_env`` the environment variable holding the key
    (sent as a bearer token when set); ``timeout_s`` per request; ``retries`` more attempts after a
    failed one, ``backoff_s`` apart, doubling; ``concurrency`` requests in flight; ``prompt`` a
    template with ``{gold}`` and ``{response}``. A reply starting with "yes" is right, "no" wrong;
    any other reply counts as wrong and is logged. ``prompt`` is a name in :data:`JUDGE_PROMPTS`
    (``mmk12``: MM-Eureka's MMK12 evaluation prompt) or a template; ``{question}`` in it is the
    problem's text (empty when the caller gives none).
    """

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        concurrency: int = 8,
        prompt: str = JUDGE_PROMPT,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}.")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or concurrency < 1:
            raise ValueError("timeout_s must be positive, retries and backoff_s at least 0, concurrency at least 1.")
        prompt = JUDGE_PROMPTS.get(prompt, prompt)
        if "{gold}" not in prompt or "{response}" not in prompt:
            raise ValueError(f"prompt must be one of {', '.join(JUDGE_PROMPTS)} or contain {{gold}} and {{response}}.")
        parts = urlsplit(url)  # a query (e.g. a key some gateways take there) stays after the path
        self.endpoint = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))
        self.shown = redact_url(self.endpoint)  # the endpoint as logs and errors name it
        # what an error message may quote of the endpoint: requests names the path and query alone
        sent = urlsplit(self.endpoint)
        self.secret_parts = [self.endpoint] + ([f"{sent.path}?{sent.query}"] if sent.query else [])
        self.warned_plain_http = False
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.concurrency = concurrency
        self.prompt = prompt

    def check_gold(self, gold: str) -> str | None:
        return None if gold.strip() else "the gold answer is empty"

    def __call__(self, responses: Sequence[str], gold: str, question: str | None = None) -> list[bool]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda response: self._verdict(response, gold, question or ""), responses))

    def _verdict(self, response: str, gold: str, question: str) -> bool:
        reply = self._ask(self.prompt.format(question=question, gold=gold, response=response)).strip().lower()
        if reply.startswith("yes"):
            return True
        if not reply.startswith("no"):
            logger.warning("judge reply is neither yes nor no (%d characters), counted as wrong", len(reply))
        return False

    def _scrubbed(self, message: str) -> str:
        """``message`` with the endpoint, and its path with the query, replaced by :func:`redact_url`'s form."""
        for part in self.secret_parts:
            message = message.replace(part, self.shown)
        return message

    def _ask(self, content: str) -> str:
        import requests

        headers = {}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
            if self.endpoint.startswith("http://") and not is_loopback(self.endpoint) and not self.warned_plain_http:
                self.warned_plain_http = True
                logger.warning(
                    "judge %s: the key in $%s is sent unencrypted (plain http:// to another machine); "
                    "use https:// or a tunnel",
                    self.shown,
                    self.api_key_env,
                )
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "temperature": 0.0}
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                reply = requests.post(self.endpoint, json=body, headers=headers, timeout=self.timeout_s)
                reply.raise_for_status()
                return reply.json()["choices"][0]["message"]["content"] or ""
            except requests.HTTPError as exc:
                failure = f"HTTPError: {exc.response.status_code} {exc.response.reason}"
            except requests.RequestException as exc:  # their messages repeat the URL, credentials included
                failure = f"{type(exc).__name__}: {self._scrubbed(str(exc))}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                failure = f"not a chat-completions reply ({type(exc).__name__})"
            logger.warning("judge %s, attempt %d of %d: %s", self.shown, attempt + 1, self.retries + 1, failure)
        raise JudgeUnavailable(f"judge {self.shown} failed {self.retries + 1} times; last: {failure}")
