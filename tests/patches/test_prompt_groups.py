"""A prompt's images are processed once per group of samples in the rollout actor.

The actor under test is OpenRLHF 0.11.2's own ``RolloutRayActor.generate_responses`` (from an
unpatched copy of its module) with its ``SingleTurnAgentExecutor`` and the tiny VLM's processor;
vLLM cannot run on CPU, so a fake engine answers ``generate`` (tests named ``fake_vllm``).
"""

import asyncio
import importlib.util
import pickle
import types

import pytest
import torch
from PIL import Image

N = 8


@pytest.fixture(scope="module")
def processor(tiny_vlm_dir):
    from mm_eureka_plugin.checkpoints import load_processor

    return load_processor(tiny_vlm_dir)[0]


@pytest.fixture
def actor_module():
    """A fresh copy of OpenRLHF's ``vllm_engine`` module, patched; ``upstream`` keeps the class
    its ``RolloutRayActor`` wrapped before."""
    from mm_eureka_plugin.patches import install, vllm_engine

    install(cpu=True)  # the vllm stand-in the module imports; patches openrlhf.utils.vlm_utils
    spec = importlib.util.find_spec("openrlhf.trainer.ray.vllm_engine")
    copy = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location("openrlhf.trainer.ray.upstream_copy", spec.origin)
    )
    copy.__spec__.loader.exec_module(copy)
    copy.upstream = copy.RolloutRayActor.__ray_actor_class__
    vllm_engine.patch(copy)
    return copy


@pytest.fixture
def actor_classes(actor_module):
    """(OpenRLHF's RolloutRayActor class, the patched one)."""
    return actor_module.upstream, actor_module.RolloutRayActor.__ray_actor_class__


class FakeVLLMEngine:
    """Stands in for the rollout actor's vLLM engine: answers one token, records the requests."""

    def __init__(self):
        from openrlhf.utils.agent import SingleTurnAgentExecutor

        self.executor = SingleTurnAgentExecutor()
        self.requests = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.requests.append((list(prompt_token_ids), multi_modal_data))
        await asyncio.sleep(0)
        output = types.SimpleNamespace(token_ids=[11], text=",", finish_reason="stop", logprobs=None)
        return types.SimpleNamespace(outputs=[output])


def image(tmp_path, name, colour, size=(112, 84)):
    path = tmp_path / f"{name}.png"
    Image.new("RGB", size, colour).save(path)
    return str(path)


def prompt(processor, question="What colour is it?"):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def generate(actor_class, engine, processor, text, images, n=N):
    from vllm import SamplingParams

    return actor_class.generate_responses(
        engine, text, "label", SamplingParams(max_tokens=4), 512, processor, num_samples=n, images=images
    )


def counting_loads(monkeypatch):
    from openrlhf.utils import vlm_utils

    calls = []
    load_images = vlm_utils.load_images

    def counted(refs):
        calls.append(refs)
        return load_images(refs)

    monkeypatch.setattr(vlm_utils, "load_images", counted)
    return calls


def test_fake_vllm_group_is_processed_once_with_upstreams_result(actor_classes, processor, tmp_path, monkeypatch):
    upstream, patched = actor_classes
    images = [image(tmp_path, "red", (200, 30, 30))]
    text = prompt(processor)
    calls = counting_loads(monkeypatch)
    theirs = asyncio.run(generate(upstream, FakeVLLMEngine(), processor, text, images))
    assert len(calls) == N
    calls.clear()
    engine = FakeVLLMEngine()
    ours = asyncio.run(generate(patched, engine, processor, text, images))
    assert len(calls) == 1

    assert len(ours) == N
    for mine, their in zip(ours, theirs):
        assert mine["observation_tokens"] == their["observation_tokens"]
        assert mine["action_ranges"] == their["action_ranges"]
        assert mine["mm_train_inputs"].keys() == their["mm_train_inputs"].keys()
        for key, value in their["mm_train_inputs"].items():
            assert torch.equal(mine["mm_train_inputs"][key], value)
    pixels = ours[0]["mm_train_inputs"]["pixel_values"]
    assert all(o["mm_train_inputs"]["pixel_values"] is pixels for o in ours)  # shared, not copied
    assert len({id(o["mm_train_inputs"]) for o in ours}) == N  # each sample still has its own dict
    assert len(engine.requests) == N
    assert all(len(mm["image"]) == 1 and mm["image"][0].size == (112, 84) for _, mm in engine.requests)

    # What Ray sends back for the group: the shared pixels pickle once instead of n times.
    theirs_bytes, ours_bytes = len(pickle.dumps(theirs)), len(pickle.dumps(ours))
    assert ours_bytes < theirs_bytes / 4
    assert ours_bytes > pixels.numel() * pixels.element_size()


def test_fake_vllm_concurrent_groups_keep_their_own_images(actor_classes, processor, tmp_path):
    upstream, patched = actor_classes
    red, blue = [image(tmp_path, "red", (200, 30, 30))], [image(tmp_path, "blue", (20, 30, 220), size=(56, 140))]
    text_red, text_blue = prompt(processor, "First?"), prompt(processor, "Second?")

    async def both(actor_class):
        engine = FakeVLLMEngine()
        return await asyncio.gather(
            generate(actor_class, engine, processor, text_red, red, n=3),
            generate(actor_class, engine, processor, text_blue, blue, n=3),
        )

    ours, theirs = asyncio.run(both(patched)), asyncio.run(both(upstream))
    for our_group, their_group in zip(ours, theirs):
        for mine, their in zip(our_group, their_group):
            assert mine["observation_tokens"] == their["observation_tokens"]
            assert torch.equal(mine["mm_train_inputs"]["pixel_values"], their["mm_train_inputs"]["pixel_values"])
    assert not torch.equal(
        ours[0][0]["mm_train_inputs"]["image_grid_thw"], ours[1][0]["mm_train_inputs"]["image_grid_thw"]
    )


def test_fake_vllm_single_samples_and_text_prompts_are_untouched(actor_classes, processor, tmp_path, monkeypatch):
    _, patched = actor_classes
    calls = counting_loads(monkeypatch)
    images = [image(tmp_path, "red", (200, 30, 30))]
    asyncio.run(generate(patched, FakeVLLMEngine(), processor, prompt(processor), images, n=1))
    assert len(calls) == 1
    outputs = asyncio.run(generate(patched, FakeVLLMEngine(), processor, "1 + 1 =", None, n=3))
    assert [o["mm_train_inputs"] for o in outputs] == [None] * 3


def test_fake_vllm_images_that_do_not_load_fail_as_upstream(actor_classes, processor, tmp_path):
    upstream, patched = actor_classes
    missing = [str(tmp_path / "missing.png")]
    for actor_class in (upstream, patched):
        with pytest.raises(ValueError, match="All images failed to load"):
            asyncio.run(generate(actor_class, FakeVLLMEngine(), processor, prompt(processor), missing))


def test_patched_rollout_actors_pickle_as_ray_exports_them(actor_module):
    """Ray sends an actor class to its worker by value (cloudpickle): the wrapper must pickle."""
    from ray import cloudpickle

    from mm_eureka_plugin.patches.cpu.rollout_actor import CPURolloutActor

    for actor_class in (actor_module.RolloutRayActor, CPURolloutActor):
        restored = pickle.loads(cloudpickle.dumps(actor_class.__ray_metadata__.modified_class))
        assert restored.generate_responses.__wrapped__.__name__ == "generate_responses"


def test_the_cpu_rollout_actor_shares_group_inputs():
    from mm_eureka_plugin.patches.cpu.rollout_actor import CPURolloutActor

    wrapped = CPURolloutActor.__ray_actor_class__.generate_responses
    assert wrapped.__wrapped__.__qualname__ == "CPURolloutActor.generate_responses"
