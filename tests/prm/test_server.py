"""The PRM server as the launcher starts it: one Ray actor, batching the prm rewards' requests."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from mm_eureka_plugin.prm.scorer import PRMInput, PRMScorer
from mm_eureka_plugin.registry import resolve
from mm_eureka_plugin.rewards import RewardSample

PROMPT = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Which colour?<|im_end|>\n<|im_start|>assistant\n"


def response(k):
    return f"<step>I look at the picture {k}.</step><step>It is red.</step><answer>red</answer>"


def image():
    return Image.new("RGB", (56, 56), (200, 30, 30))


@pytest.fixture(scope="module")
def server(prm_dir, tmp_path_factory):
    """Ray started by the launcher's ``init_ray`` with a prm reward and ``plugin.prm``, and the server
    started by the launcher's ``start_prm``."""
    import ray

    from mm_eureka_plugin.config import parse_plugin_section
    from mm_eureka_plugin.launch import start_prm
    from mm_eureka_plugin.patches.launch import init_ray

    plugin = parse_plugin_section(
        {"device": "cpu", "reward": "prm", "prm": {"path": str(prm_dir), "batch_size": 8, "max_wait_ms": 300}}
    )
    with pytest.MonkeyPatch.context() as env:  # init_ray exports the plugin config: keep it to this module
        init_ray(plugin, cpu=True, num_cpus=3, num_gpus=0, include_dashboard=False)
        try:
            yield start_prm(plugin.prm, cpu=True)
        finally:
            ray.shutdown()
            env.undo()


def test_concurrent_rewards_share_batched_forwards_and_get_the_prm_scores(server, prm_dir):
    import ray

    reward = resolve("reward", "prm", aggregator="min")
    samples = [RewardSample(response(k), "red", PROMPT, [image()]) for k in range(6)]
    results = [None] * len(samples)

    def score(i):
        results[i] = reward([samples[i]])[0]

    threads = [threading.Thread(target=score, args=(i,)) for i in range(len(samples))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    local = PRMScorer(prm_dir).score(
        [PRMInput(PROMPT, [f"I look at the picture {k}.", "It is red.", "red"], [image()], True) for k in range(6)]
    )
    assert [r.reward for r in results] == pytest.approx([min(s) for s in local], abs=1e-5)
    assert all(r.components["prm_failed"] == 0.0 for r in results)
    stats = ray.get(server.stats.remote())
    assert stats["requests"] == 6 and stats["solutions"] == 6 and stats["device"] == "cpu"
    assert stats["batches"] <= 2  # six single-sample requests, one or two forward passes


def test_a_rollout_actor_in_another_worker_finds_the_server_by_name(server):
    import ray

    def score_in_a_worker(sample):  # nothing from this test module: workers cannot import it
        from mm_eureka_plugin.registry import resolve

        return resolve("reward", "prm", mode="dense")([sample])[0]

    sample = RewardSample(response(0), "red", PROMPT, [image()])
    result = ray.get(ray.remote(num_cpus=0)(score_in_a_worker).remote(sample), timeout=120)
    assert result.error is None and len(result.step_rewards) == 3


def test_a_bad_request_fails_alone_and_the_batch_is_still_scored(server):
    import ray

    good = PRMInput(PROMPT, ["It is red.", "red"], [image()], True)
    bad = PRMInput(PROMPT + "<prm>", ["It is red."], [image()], True)  # a tag the steps do not account for
    good_ref, bad_ref = server.score.remote([good]), server.score.remote([bad])
    assert len(ray.get(good_ref, timeout=120)[0]) == 2
    with pytest.raises(ray.exceptions.RayTaskError, match="tags for 1 steps"):
        ray.get(bad_ref, timeout=120)
    assert ray.get(server.stats.remote())["failed_batches"] >= 1


def test_a_timeout_gives_the_fallback_reward_and_counts_the_failure(server):
    reward = resolve("reward", "prm", fallback=0.5, timeout_s=1e-4)
    (result,) = reward([RewardSample(response(1), "red", PROMPT, [image()])])
    assert result.reward == 0.5 and result.components == {"prm": 0.5, "prm_failed": 1.0}
    assert "GetTimeoutError" in result.error


def test_a_dead_server_gives_the_fallback_reward_and_training_goes_on(server):
    import ray

    reward = resolve("reward", "prm", fallback=0.0)
    sample = RewardSample(response(2), "red", PROMPT, [image()])
    assert reward([sample])[0].components["prm_failed"] == 0.0
    ray.kill(server)
    (result,) = reward([sample])
    assert result.reward == 0.0 and result.components["prm_failed"] == 1.0
    assert "ActorDiedError" in result.error or "RayActorError" in result.error
