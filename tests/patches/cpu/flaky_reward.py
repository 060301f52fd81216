"""A reward component that raises on every sample whose gold answer is "red" (for the CPU smoke test)."""

from mm_eureka_plugin.rewards import RewardResult, RewardSample


def make_flaky_reward():
    def flaky(samples: list[RewardSample]) -> list[RewardResult]:
        results = []
        for sample in samples:
            if sample.label == "red":
                raise ValueError("flaky reward: cannot score red")
            results.append(RewardResult(reward=1.0, components={"flaky": 1.0}))
        return results

    return flaky
