"""The CPU rollout actor: batched generation with images, vLLM's output shape, banned tokens,
log-probs, and weights received through OpenRLHF's own ``broadcast_to_vllm``."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import pytest
import torch

from mm_eureka_plugin.patches.cpu.vllm_engine import CPURolloutActor


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from mm_eureka_plugin.synthetic import build_colour_task

    return build_colour_task(tmp_path_factory.mktemp("colours"), train_size=8, eval_size=4)


@pytest.fixture(scope="module")
def prompts(task):
    """Two prompts of the colour task as the executor passes them: token ids with image pads, images."""
    import json

    from PIL import Image

    from mm_eureka_plugin.data.records import decode_label
    from mm_eureka_plugin.tiny_vlm import load_processor

    processor = load_processor(task.model)
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
    from mm_eureka_plugin.patches.cpu.vllm_standin import SamplingParams

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


def test_a_stop_token_ends_the_completion_and_is_kept(task, prompts):
    actor = local_actor(task)
    ids, images, _ = prompts[0]
    first, _ = reference_greedy(actor, ids, images, 1)
    actor.eos_token_ids = [*actor.eos_token_ids, first[0]]  # the greedy first token now stops
    output = asyncio.run(actor.generate(ids, params(min_tokens=0), {"image": images})).outputs[0]
    assert output.token_ids == first
    assert output.finish_reason == "stop"
    # As in vLLM, min_tokens holds stop tokens back.
    output = asyncio.run(actor.generate(ids, params(min_tokens=1), {"image": images})).outputs[0]
    assert output.token_ids[0] != first[0]


def test_bad_words_are_never_generated(task, prompts):
    actor = local_actor(task)
    ids, images, _ = prompts[0]
    first, _ = reference_greedy(actor, ids, images, 1)
    banned = actor.tokenizer.convert_ids_to_tokens(first)
    output = asyncio.run(actor.generate(ids, params(max_tokens=1, bad_words=banned), {"image": images})).outputs[0]
    assert output.token_ids and output.token_ids[0] != first[0]

    with pytest.raises(ValueError, match="single tokens only"):
        asyncio.run(actor.generate(ids, params(bad_words=["red green"]), {"image": images}))


def test_logprobs_are_the_models_own(task, prompts):
    actor = local_actor(task)
    ids, images, _ = prompts[0]
    output = asyncio.run(actor.generate(ids, params(max_tokens=1, logprobs=1), {"image": images})).outputs[0]
    token = output.token_ids[0]
    _, log_probs = reference_greedy(actor, ids, images, 1)
    assert output.logprobs[0][token].logprob == pytest.approx(log_probs[token].item(), abs=1e-4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_weights_broadcast_by_openrlhf_reach_the_rollout_actor(task, prompts, plugin_env, openrlhf_args, monkeypatch):
    """OpenRLHF's real ``_init_vllm_sync_group`` + ``broadcast_to_vllm`` (patched only in the names
    the CPU patches replace) update a Ray-hosted CPU rollout actor: afterwards it samples from the
    trainer's weights (its log-probs equal the trainer model's), before it did not."""
    import ray
    import torch.distributed as dist
    from transformers import AutoModelForImageTextToText

    from mm_eureka_plugin.config import CONFIG_ENV, parse_plugin_section
    from mm_eureka_plugin.launch import init_ray
    from mm_eureka_plugin.patches import DEVICE_ENV

    for key in (CONFIG_ENV, DEVICE_ENV):  # init_ray sets them in this process: undo after
        monkeypatch.setenv(key, "")
    plugin_env({"device": "cpu"})
    from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer

    args = openrlhf_args("--actor.model_name_or_path", str(task.model), "--vllm.num_engines", "1")
    model = AutoModelForImageTextToText.from_pretrained(str(task.model), dtype=torch.float32)
    model.model.visual.requires_grad_(False)  # OpenRLHF sends a VLM's trainable weights only
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    init_ray(parse_plugin_section({"device": "cpu"}), cpu=True, num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        engine = CPURolloutActor.remote(model=str(task.model), seed=0, tensor_parallel_size=1)
        trainer = ActorPPOTrainer.__new__(ActorPPOTrainer)
        trainer.strategy = SimpleNamespace(args=args)
        trainer.vllm_engines = [engine]
        trainer.use_cuda_ipc = False
        trainer.actor = SimpleNamespace(model=SimpleNamespace(module=model), is_vlm=True)

        ids, images, _ = prompts[0]
        local = LocalPolicy(model, task)

        def rollout_logprob():
            output = ray.get(engine.generate.remote(ids, params(max_tokens=1, logprobs=1), {"image": images}))
            token = output.outputs[0].token_ids[0]
            return token, output.outputs[0].logprobs[0][token].logprob

        token, before = rollout_logprob()
        assert before != pytest.approx(local.log_prob(ids, images, token), abs=1e-3)

        trainer._init_vllm_sync_group("gloo")
        trainer.broadcast_to_vllm()
        token, after = rollout_logprob()
        assert after == pytest.approx(local.log_prob(ids, images, token), abs=1e-3)
    finally:
        ray.shutdown()
        dist.destroy_process_group()


class LocalPolicy:
    def __init__(self, model, task):
        from mm_eureka_plugin.tiny_vlm import load_processor

        self.model = model
        self.processor = load_processor(task.model)

    def log_prob(self, ids, images, token):
        vision = self.processor.image_processor(images=images, return_tensors="pt")
        input_ids = torch.tensor([ids])
        types = (input_ids == self.model.config.image_token_id).to(torch.int32)
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, mm_token_type_ids=types, **vision).logits
        return torch.log_softmax(logits[0, -1].float(), -1)[token].item()
