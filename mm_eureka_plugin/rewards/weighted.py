"""A weighted sum of rewards; by default MM-Eureka's total, accuracy + 0.5 * format."""

from __future__ import annotations

import math
from typing import Any

from mm_eureka_plugin.contracts import Reward
from mm_eureka_plugin.registry import ComponentError, resolve
from mm_eureka_plugin.rewards.types import RewardResult, RewardSample, score_samples

MM_EUREKA_COMPONENTS = ({"name": "accuracy", "weight": 1.0}, {"name": "format", "weight": 0.5})
"""MM-Eureka's total reward: accuracy in {0, 1} plus format in {0, 0.5}."""


class WeightedReward:
    """Weighted sum of rewards (default: MM-Eureka's accuracy + 0.5 * format).

    ``components``: entries ``{"name": <registered reward or "pkg.module:attr" reference>,
    "weight": <float, default 1.0>, **params}``; each is built with
    ``registry.resolve("reward", name, **params)``, so third-party rewards compose. ``score_from``:
    the entry name whose ``score`` becomes the result's score (default: the first entry whose
    result has one, i.e. the accuracy's).

    Result: ``reward = sum(weight * sub.reward)``; ``components`` every entry's components merged
    (a key already taken by an earlier entry becomes ``"<name>/<key>"``); ``step_rewards`` every
    entry's, scaled by its weight. A sub-reward that fails counts as error (via
    :func:`score_samples`): its contribution and component (``<name>``) are 0 and ``error`` says
    which entry failed. It is ``dense``, ``uses_server`` and ``uses_images`` when any entry is
    (an entry without ``uses_images`` counts as reading images).
    """

    def __init__(self, components: list[dict] | None = None, score_from: str | None = None) -> None:
        entries = [dict(e) for e in MM_EUREKA_COMPONENTS] if components is None else components
        if not isinstance(entries, list) or not entries:
            raise ComponentError("weighted reward: 'components' must be a non-empty list of {name, weight, ...}.")
        self.names: list[str] = []
        self.weights: list[float] = []
        self.rewards: list[Reward] = []
        for i, entry in enumerate(entries):
            name, weight, params = _check_entry(i, entry)
            try:
                reward = resolve("reward", name, **params)
            except ComponentError as exc:
                raise ComponentError(f"weighted reward, components[{i}] ({name!r}): {exc}") from exc
            self.names.append(name)
            self.weights.append(weight)
            self.rewards.append(reward)
        if score_from is not None and score_from not in self.names:
            raise ComponentError(
                f"weighted reward: score_from {score_from!r} is not one of its components: {', '.join(self.names)}."
            )
        self.score_from = score_from

    @property
    def dense(self) -> bool:
        """Whether any entry credits its step rewards per token (``dense``)."""
        return any(getattr(reward, "dense", False) for reward in self.rewards)

    @property
    def uses_server(self) -> bool:
        """Whether any entry scores with the run's PRM server (``uses_server``)."""
        return any(getattr(reward, "uses_server", False) for reward in self.rewards)

    @property
    def uses_images(self) -> bool:
        """Whether any entry reads the samples' images (``uses_images``; true when it does not say)."""
        return any(getattr(reward, "uses_images", True) for reward in self.rewards)

    def __call__(self, samples: list[RewardSample]) -> list[RewardResult]:
        per_entry = [score_samples(reward, samples) for reward in self.rewards]
        return [self._combine([results[i] for results in per_entry]) for i in range(len(samples))]

    def _combine(self, parts: list[RewardResult]) -> RewardResult:
        total, components, steps, errors, scores = 0.0, {}, [], [], {}
        for name, weight, part in zip(self.names, self.weights, parts):
            total += weight * part.reward
            own = dict(part.components)
            if part.error is not None:
                errors.append(f"{name}: {part.error}")
                own = own or {name: 0.0}
            for key, value in own.items():
                components[f"{name}/{key}" if key in components else key] = value
            if part.step_rewards:
                steps.extend((offset, weight * value) for offset, value in part.step_rewards)
            if part.score is not None:
                scores.setdefault(name, part.score)
        if self.score_from is not None:
            score = scores.get(self.score_from)
        else:
            score = next(iter(scores.values()), None)
        return RewardResult(
            reward=total,
            components=components,
            score=score,
            step_rewards=sorted(steps) if steps else None,
            error="; ".join(errors) or None,
        )


def _check_entry(i: int, entry: Any) -> tuple[str, float, dict[str, Any]]:
    where = f"weighted reward, components[{i}]"
    if not isinstance(entry, dict):
        raise ComponentError(f"{where} must be a mapping such as {{name: accuracy, weight: 1.0}}, got {entry!r}.")
    params = dict(entry)
    name = params.pop("name", None)
    weight = params.pop("weight", 1.0)
    if not isinstance(name, str) or not name:
        raise ComponentError(
            f"{where} needs 'name': a registered reward or a 'pkg.module:attr' reference; got {entry!r}."
        )
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ComponentError(f"{where} ({name!r}): 'weight' must be a finite number, got {weight!r}.")
    return name, float(weight), params
