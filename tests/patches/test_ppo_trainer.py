"""The trainer-side logs: eval accuracy per datasource, the samples log's rows, the filter's counts."""

import json
import logging
import types

import pytest
import torch

from mm_eureka_plugin.data.records import encode_label


def experience(prompt, label, reward, images=None, sequence=(5, 6, 7, 8), response_tokens=2):
    """One rollout sample as OpenRLHF's SamplesGenerator makes it."""
    from openrlhf.trainer.ppo_utils.experience import Experience

    mask = torch.zeros(1, len(sequence) - 1, dtype=torch.bool)
    mask[0, -response_tokens:] = True
    return Experience(
        sequences=torch.tensor([sequence]),
        action_mask=mask,
        prompts=[prompt],
        labels=[label],
        images=[images],
        rewards=torch.tensor([reward]),
        scores=torch.tensor([reward]),
        response_length=torch.tensor([response_tokens]),
        truncated=torch.tensor([False]),
        info={},
    )


def eval_rows():
    """Four eval rows with one question and an image each, two datasources (batches of 2)."""
    rows = [("red", "r1.png"), ("blue", "b1.png"), ("red", "r2.png"), ("blue", "b2.png")]
    return [
        (
            [source for source, _ in batch],
            ["What colour?"] * len(batch),
            [source for source, _ in batch],
            [[image] for _, image in batch],
        )
        for batch in (rows[:2], rows[2:])
    ]


def test_eval_accuracy_is_per_datasource_when_prompts_repeat_with_other_images(plugin_env):
    plugin_env({})
    from openrlhf.trainer import ppo_trainer

    # Red images answered right, blue ones wrong; samples arrive in another order than the rows.
    samples = [
        experience("What colour?", "blue", 0.0, ["b2.png"]),
        experience("What colour?", "red", 1.0, ["r1.png"]),
        experience("What colour?", "blue", 0.0, ["b1.png"]),
        experience("What colour?", "red", 1.0, ["r2.png"]),
    ]
    logs = ppo_trainer.compute_eval_metrics(eval_rows(), samples, 1)
    assert logs["eval_red_pass1"] == 1.0 and logs["eval_blue_pass1"] == 0.0
    assert logs["eval_all_pass1"] == 0.5
    assert logs["eval_num_samples"] == 4.0
    # Upstream finds the source by prompt text alone: every sample is "blue", the last row's.
    upstream = ppo_trainer.compute_eval_metrics.__wrapped__(eval_rows(), samples, 1)
    assert "eval_red_pass1" not in upstream and upstream["eval_blue_pass1"] == 0.5


def test_rows_with_one_image_are_told_apart_by_their_labels(plugin_env):
    plugin_env({})
    from openrlhf.trainer import ppo_trainer

    # The blank control: every row shows the same grey image; the label says which colour it is.
    rows = [(["red", "blue"], ["What colour?"] * 2, ["red-0", "blue-1"], [["grey.png"], ["grey.png"]])]
    samples = [
        experience("What colour?", "blue-1", 1.0, ["grey.png"]),
        experience("What colour?", "red-0", 0.0, ["grey.png"]),
    ]
    logs = ppo_trainer.compute_eval_metrics(rows, samples, 1)
    assert logs["eval_red_pass1"] == 0.0 and logs["eval_blue_pass1"] == 1.0 and logs["eval_all_pass1"] == 0.5


def test_one_datasource_gets_no_extra_overall_metric(plugin_env):
    plugin_env({})
    from openrlhf.trainer import ppo_trainer

    rows = [(["default"], ["q"], ["a"], [None])]
    logs = ppo_trainer.compute_eval_metrics(rows, [experience("q", "a", 1.0)], 1)
    assert logs["eval_default_pass1"] == 1.0 and "eval_all_pass1" not in logs


def test_sample_rows_carry_the_executors_log_and_the_batched_advantages(plugin_env):
    plugin_env({})
    from openrlhf.trainer.ppo_utils.experience import Experience

    from mm_eureka_plugin.patches.ppo_trainer import sample_rows

    label = encode_label("red", {"id": "train-00007", "colour": "red"})
    samples = [experience("Q", label, float(i % 2), ["/x/train-00007.png"]) for i in range(8)]
    for i, sample in enumerate(samples):
        sample.sample_log = {"response": f"answer {i}", "rewards": {"accuracy": float(i % 2)}, "error": None}
        sample.index = [i]
    samples[4].sample_log["error"] = "ValueError: boom"
    # Two batches in another order, as OpenRLHF's experience maker may return them.
    batches = []
    for part in ([7, 2, 4, 1], [0, 3, 5, 6]):
        batch = Experience.concat_experiences([samples[i] for i in part], pad_token_id=0)
        batch.advantages = torch.tensor([[0.0, 10.0 * i, 10.0 * i] for i in part])  # masked first token
        batches.append(batch)
    rows = sample_rows(samples, batches, step=3, count=4, tokenizer=None)
    assert [row["response"] for row in rows] == ["answer 0", "answer 2", "answer 4", "answer 6"]
    assert [row["advantage"] for row in rows] == [0.0, 20.0, 40.0, 60.0]
    assert all(row["step"] == 3 and row["prompt_id"] == "train-00007" for row in rows)
    assert rows[0]["images"] == ["train-00007.png"] and rows[1]["rewards"] == {"accuracy": 0.0}
    assert rows[2]["reward_error"] == "ValueError: boom" and rows[1]["reward_error"] is None


def test_without_the_plugins_executor_the_response_is_decoded_from_the_tokens(plugin_env):
    plugin_env({})
    from mm_eureka_plugin.patches.ppo_trainer import sample_rows

    sample = experience("Q", "plain answer", 1.0, None, sequence=(5, 6, 7, 8), response_tokens=2)
    sample.index = [0]
    sample.advantages = torch.tensor([[0.0, 1.0, 1.0]])
    tokenizer = types.SimpleNamespace(decode=lambda tokens, skip_special_tokens: json.dumps(tokens.tolist()))
    (row,) = sample_rows([sample], [sample], step=1, count=4, tokenizer=tokenizer)
    assert row["response"] == "[7, 8]" and row["prompt_id"] is None and row["images"] == []


def test_filter_counts_split_dropped_groups_by_side(plugin_env, caplog):
    plugin_env({})
    from mm_eureka_plugin.patches.samples_generator import count_filtered, take_filter_counts

    def group(prompt_id, scores):
        return [experience("Q", encode_label("a", {"id": prompt_id}), s) for s in scores]

    groups = [
        group("p0", [1, 0, 0, 0]),
        group("p1", [0, 0, 0, 0]),
        group("p2", [1, 1, 1, 1]),
        group("p3", [1, 1, 0, 0]),
    ]
    seen = [exp for g in groups for exp in g]
    kept = groups[0] + groups[3]
    with caplog.at_level(logging.INFO):
        counts = count_filtered(seen, kept, 4, 0.1, 0.9)
    assert counts == {"filter/kept": 2, "filter/dropped_low": 1, "filter/dropped_high": 1}
    assert "accuracy filter dropped prompt p1: mean score 0.000 (low)" in caplog.text
    generator = types.SimpleNamespace(_mm_eureka_filter_counts=counts)
    assert take_filter_counts(generator) == {"filter/kept": 2.0, "filter/dropped_low": 1.0, "filter/dropped_high": 1.0}
    assert take_filter_counts(generator) == pytest.approx(dict.fromkeys(counts, 0.0))
