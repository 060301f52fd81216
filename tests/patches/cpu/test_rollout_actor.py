"""The transformers rollout actor's own mechanics: concurrent requests batched into one generate
(equal to unbatched greedy decoding), and its limits. The contract it shares with OpenRLHF's vLLM
actor (output shape, log-probs, stop tokens, banned tokens, weight sync) is tested on both in
``test_rollout_engines.py``."""

from __future__ import annotations

import asyncio

import pytest
import torch

from mm_eureka_plugin.patches.cpu.rollout_actor import CPURolloutActor


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from mm_eureka_plugin.synthetic import build_colour_task

    return build_colour_task(tmp_path_factory.mktemp("colours"), train_size=8, eval_size=4)


@pytest.fixture(scope="module")
def prompts(task):
    """Two prompts of the colour task as the executor passes them: token ids with image pads, images."""
    import json

    from PIL import Image

    from mm_eureka_plugin.checkpoints import load_processor
    from mm_eureka_plugin.data.records import decode_label

    processor = load_processor(task.model)[0]
    rows = [json.loads(line) for line in task.eval.read_text().splitlines()][:2]
    out = []
    for row in rows:
        image = Image.open(row["images"][0])
        text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        ids = processor(text=[text], images=[image.convert("RGB")], return_tensors="pt")["input_ids"][0].tolist()
        out.append((ids, [image.convert("RGB")], decode_label(row["mm_eureka_label"])[0]))
    return out


def local_actor(task):
    """The actor class itself, run in this process (Ray is needed only for remote calls)."""
    return CPURolloutActor.__ray_metadata__.modified_class(model=str(task.model), seed=0, tensor_parallel_size=1)


def params(**kwargs):
    from vllm import SamplingParams

    defaults = {"temperature": 0.0, "max_tokens": 3, "min_tokens": 1, "skip_special_tokens": True}
    return SamplingParams(**{**defaults, **kwargs})


def reference_greedy(actor, ids, images, steps):
    """Greedy continuation of one prompt with a plain forward per token (no generate, no batching)."""
    inputs = actor.image_processor(images=images, return_tensors="pt")
    tokens = list(ids)
    for _ in range(steps):
        input_ids = torch.tensor([tokens])
        types = (input_ids == actor.image_token_id).to(torch.int32)
        with torch.no_grad():
            logits = actor.model(
                input_ids=input_ids,
                pixel_values=inputs["pixel_values"],
                image_grid_thw=inputs["image_grid_thw"],
                mm_token_type_ids=types,
            ).logits
        tokens.append(int(logits[0, -1].argmax()))
    return tokens[len(ids) :], torch.log_softmax(logits[0, len(ids) - 1].float(), -1)


def test_concurrent_requests_are_one_batch_and_match_unbatched_greedy(task, prompts, monkeypatch):
    actor = local_actor(task)
    calls = []
    generate = actor.model.generate
    monkeypatch.setattr(actor.model, "generate", lambda **kw: calls.append(kw["input_ids"].shape) or generate(**kw))

    async def run():
        return await asyncio.gather(*(actor.generate(ids, params(), {"image": images}) for ids, images, _ in prompts))

    outputs = asyncio.run(run())
    assert calls == [torch.Size([2, max(len(ids) for ids, _, _ in prompts)])]  # one left-padded batch
    for (ids, images, _), output in zip(prompts, outputs):
        expected, _ = reference_greedy(actor, ids, images, 3)
        completion = output.outputs[0]
        assert completion.token_ids == expected
        assert completion.finish_reason == "length"
        assert completion.text == actor.tokenizer.decode(expected, skip_special_tokens=True)


def test_bad_words_are_never_generated_and_must_be_single_tokens(task, prompts):
    actor = local_actor(task)
    ids, images, _ = prompts[0]
    first, _ = reference_greedy(actor, ids, images, 1)
    banned = actor.tokenizer.convert_ids_to_tokens(first)
    output = asyncio.run(actor.generate(ids, params(max_tokens=1, bad_words=banned), {"image": images})).outputs[0]
    assert output.token_ids and output.token_ids[0] != first[0]

    with pytest.raises(ValueError, match="single tokens only"):
        asyncio.run(actor.generate(ids, params(bad_words=["red green"]), {"image": images}))


def test_a_seeded_request_samples_the_same_tokens_whatever_it_is_batched_with(task, prompts):
    actor = local_actor(task)
    (ids, images, _), (other_ids, other_images, _) = prompts
    sampled = {"temperature": 1.0, "max_tokens": 4, "top_p": 0.95}

    async def together(seeds):
        requests = [actor.generate(ids, params(seed=seed, **sampled), {"image": images}) for seed in seeds]
        requests.append(actor.generate(other_ids, params(seed=99, **sampled), {"image": other_images}))
        return [output.outputs[0].token_ids for output in await asyncio.gather(*requests)]

    alone = [asyncio.run(actor.generate(ids, params(seed=seed, **sampled), {"image": images})) for seed in range(8)]
    batched = asyncio.run(together(range(8)))
    assert [output.outputs[0].token_ids for output in alone] == batched[:8]
    assert len({tuple(tokens) for tokens in batched[:8]}) > 1  # the seeds differ, so do the samples
    again = asyncio.run(together(range(8)))
    assert again == batched
