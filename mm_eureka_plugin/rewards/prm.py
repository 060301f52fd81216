"""The ``prm`` reward: MM-PRM's process reward model as an RL reward (arXiv 2505.13427).

The response is cut into steps by a ``step_splitter`` and every step is scored by the PRM in one
forward pass (:class:`mm_eureka_plugin.prm.PRMScorer`), behind the prompt and its images.

- ``mode: sequence``: reward = ``aggregator(step scores)`` (e.g. ``min``), one scalar, which
  OpenRLHF credits at the last token like any other reward. The step scores are clamped to
  [:data:`SCORE_EPS`, 1 - :data:`SCORE_EPS`] first: a score rounded to exactly 0 or 1 would
  otherwise give ``sum_logprob`` or ``sum_logit`` MM-PRM's -/+9999 sentinel as a reward (odds,
  ``mean_odds``, are unbounded either way: not a reward scale to train on).
- ``mode: dense``: each step's score is credited at the token that ends the step
  (``step_rewards``, character offsets into the response; the rollout executor maps them to
  tokens) and the scalar reward is 0. The aggregate is still logged as the ``prm`` component.
  See the README's "The PRM as an RL reward" for the estimators this is valid with.

Where the PRM runs: with ``path``, in this process (``mm-eureka reward score``, notebooks); without
it, in the training run's PRM server (``plugin.prm``; :mod:`mm_eureka_plugin.prm.server`),
waiting at most ``timeout_s``. A response without steps, a server that times out or fails, or a
PRM error gives the sample the ``fallback`` reward; failures set the ``prm_failed`` component
(so they are counted in the step metrics) and the result's ``error``. It never raises.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from mm_eureka_plugin.registry import ComponentError, resolve
from mm_eureka_plugin.rewards.types import RewardResult, RewardSample

logger = logging.getLogger(__name__)

MODES = ("sequence", "dense")
SCORE_EPS = 1e-6
"""Step scores are clamped to [SCORE_EPS, 1 - SCORE_EPS] before they are aggregated into a reward."""


class PRMReward:
    """MM-PRM process reward: the PRM's step scores, aggregated (sequence) or credited per step (dense).

    Parameters: ``splitter`` (a ``step_splitter``, default ``tags``), ``aggregator`` (a
    ``prm_aggregator``, default ``min``), ``mode``, ``fallback`` (the reward when the PRM cannot
    score, default 0.0), ``timeout_s`` (the wait for the server, default 60), ``path`` (score in
    this process with the checkpoint there instead of the run's server), ``batch_size`` (solutions
    per forward with ``path``).
    """

    uses_images = True

    def __init__(
        self,
        splitter: str = "tags",
        aggregator: str = "min",
        mode: str = "sequence",
        fallback: float = 0.0,
        timeout_s: float = 60.0,
        path: str | None = None,
        batch_size: int = 8,
    ) -> None:
        if mode not in MODES:
            raise ComponentError(f"prm reward: mode must be one of {', '.join(MODES)}, got {mode!r}.")
        if isinstance(fallback, bool) or not isinstance(fallback, (int, float)) or not math.isfinite(fallback):
            raise ComponentError(f"prm reward: fallback must be a finite number, got {fallback!r}.")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ComponentError(f"prm reward: timeout_s must be a positive number, got {timeout_s!r}.")
        self.split = resolve("step_splitter", splitter)
        self.aggregate = resolve("prm_aggregator", aggregator)
        self.dense = mode == "dense"
        self.fallback = float(fallback)
        self.timeout_s = float(timeout_s)
        self.path = path
        self.batch_size = batch_size
        self._scorer: Any = None
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def uses_server(self) -> bool:
        """Whether this reward needs the training run's PRM server (it has no ``path``)."""
        return self.path is None

    def __call__(self, samples: list[RewardSample]) -> list[RewardResult]:
        from mm_eureka_plugin.prm.scorer import PRMInput

        steps = [self.split(sample.response) for sample in samples]
        scored = [i for i, sample_steps in enumerate(steps) if sample_steps]
        results = [self._result(self.fallback, failed=False) for _ in samples]
        if not scored:
            return results
        items = [
            PRMInput(samples[i].prompt, [s.text for s in steps[i]], samples[i].images, templated=True) for i in scored
        ]
        try:
            scores = self._score(items)
            aggregates = [self.aggregate([min(max(p, SCORE_EPS), 1 - SCORE_EPS) for p in ps]) for ps in scores]
        except Exception as exc:  # a reward never crashes training: fall back, count, log
            message = f"PRM could not score: {type(exc).__name__}: {exc}"
            logger.warning("%s (%d sample(s) get the fallback reward %s)", message, len(scored), self.fallback)
            for i in scored:
                results[i] = self._result(self.fallback, failed=True, error=message)
            return results
        for i, step_scores, aggregate in zip(scored, scores, aggregates):
            if self.dense:
                offsets = [(step.end, score) for step, score in zip(steps[i], step_scores)]
                results[i] = self._result(0.0, failed=False, component=aggregate, step_rewards=offsets)
            else:
                results[i] = self._result(aggregate, failed=False)
        return results

    def _result(
        self,
        reward: float,
        *,
        failed: bool,
        component: float | None = None,
        step_rewards: list[tuple[int, float]] | None = None,
        error: str | None = None,
    ) -> RewardResult:
        prm = reward if component is None else component
        return RewardResult(
            reward=reward,
            components={"prm": prm, "prm_failed": float(failed)},
            step_rewards=step_rewards,
            error=error,
        )

    def _score(self, items: Sequence[Any]) -> list[list[float]]:
        if self.path is not None:
            with self._lock:
                if self._scorer is None:
                    from mm_eureka_plugin.prm.scorer import PRMScorer

                    self._scorer = PRMScorer(self.path, batch_size=self.batch_size)
                return self._scorer.score(items)
        import ray

        from mm_eureka_plugin.prm.server import PRM_ACTOR_NAME

        if self._server is None:
            if not ray.is_initialized():
                raise RuntimeError(
                    "no PRM server outside a training run: give the prm reward a 'path' to score in this process."
                )
            try:
                self._server = ray.get_actor(PRM_ACTOR_NAME)
            except ValueError:
                raise RuntimeError(
                    f"no PRM server (Ray actor {PRM_ACTOR_NAME!r}): set plugin.prm in the recipe, or give "
                    "the prm reward a 'path' to score in this process."
                ) from None
        return ray.get(self._server.score.remote(items), timeout=self.timeout_s)
