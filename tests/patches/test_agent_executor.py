"""The plugin reward inside OpenRLHF's rollout executor, and OpenRLHF's dynamic filtering fed by it.

vLLM cannot run on CPU: a fake engine returns scripted responses (tests named ``fake_vllm``).
Everything else is OpenRLHF's own code: ``_load_agent_executor``, ``SingleTurnAgentExecutor``
(tokenising the prompt with the tiny VLM's processor and images), ``SamplesGenerator``.
"""

import asyncio
import os
import sys
import types

import pytest
from PIL import Image

from mm_eureka_plugin.data.records import encode_label

RIGHT = "<think>1 + 1 = 2</think><answer>$2$</answer>"
RIGHT_BAD_FORMAT = "The answer is 2 <answer>2</answer>"
WRONG = "<think>1 + 1 = 3</think><answer>3</answer>"


@pytest.fixture(scope="module")
def processor(tiny_vlm_dir):
    from mm_eureka_plugin.checkpoints import load_processor

    return load_processor(tiny_vlm_dir)[0]


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (56, 84), (200, 30, 30)).save(path)
    return str(path)


def chat_prompt(processor, question="What is 1 + 1?"):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


class FakeVLLMEngine:
    """Stands in for vLLM's engine (no vLLM on CPU): returns scripted responses, records requests."""

    def __init__(self, tokenizer, responses):
        self.tokenizer = tokenizer
        self.responses = list(responses)
        self.requests = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.requests.append((list(prompt_token_ids), sampling_params, multi_modal_data))
        text = self.responses.pop(0)
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [
            self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        ]
        output = types.SimpleNamespace(token_ids=ids, text=text, finish_reason="stop", logprobs=None)
        return types.SimpleNamespace(outputs=[output])


def load_executor(plugin_env, reward):
    from openrlhf.trainer.ray.vllm_engine import _load_agent_executor

    from mm_eureka_plugin.patches.flags import agent_executor_path

    plugin_env({"reward": reward})
    return _load_agent_executor(agent_executor_path())


def execute(executor, processor, engine, label, images, prompt=None):
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=32, temperature=1.0)
    output = asyncio.run(
        executor.execute(
            prompt or chat_prompt(processor),
            label,
            params,
            max_length=1024,
            hf_tokenizer=processor,
            llm_engine=engine,
            images=images,
        )
    )
    assert params.logit_bias is None  # the caller's parameters are not changed
    return output


def test_fake_vllm_rollout_scores_the_response_with_the_weighted_reward(plugin_env, processor, image_path):
    executor = load_executor(plugin_env, "weighted")
    engine = FakeVLLMEngine(processor.tokenizer, [RIGHT, RIGHT_BAD_FORMAT, WRONG])
    label = encode_label("2", {"id": "row-7"})
    outputs = [execute(executor, processor, engine, label, [image_path]) for _ in range(3)]

    assert [o["reward"] for o in outputs] == [1.5, 1.0, 0.5]
    assert [o["scores"] for o in outputs] == [1.0, 1.0, 0.0]  # filtering sees accuracy, not the total
    assert all(0 < output["extra_logs"].pop("reward_seconds") < 60 for output in outputs)
    assert outputs[0]["extra_logs"] == {"accuracy": 1.0, "format": 1.0, "reward_error": 0.0}
    assert outputs[1]["extra_logs"] == {"accuracy": 1.0, "format": 0.0, "reward_error": 0.0}
    prompt_ids, params, mm_data = engine.requests[0]
    assert len(mm_data["image"]) == 1
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert prompt_ids.count(image_pad) == (56 // 28) * (84 // 28)  # the image went through the processor
    banned = processor.tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>", "<|vision_start|>"])
    assert all(params.logit_bias[token] == float("-inf") for token in banned)
    assert processor.tokenizer.convert_tokens_to_ids("<|im_end|>") not in params.logit_bias


def test_fake_vllm_rollout_gives_the_reward_response_images_and_metadata(plugin_env, processor, image_path, tmp_path):
    recorder = tmp_path / "recording_reward.py"
    recorder.write_text(
        "from mm_eureka_plugin.rewards import RewardResult\n"
        "class Recorder:\n"
        "    def __init__(self):\n"
        "        self.seen = []\n"
        "    def __call__(self, samples):\n"
        "        self.seen.extend(samples)\n"
        "        return [RewardResult(0.25, components={'score': 0.5}) for _ in samples]\n"
    )
    executor = load_executor(plugin_env, f"{recorder}:Recorder")
    engine = FakeVLLMEngine(processor.tokenizer, [RIGHT])
    output = execute(executor, processor, engine, encode_label("2", {"id": "row-9", "subject": "math"}), [image_path])

    sample = executor.reward.seen[-1]
    assert sample.response == RIGHT  # decoded response only: no prompt, no special tokens
    assert sample.label == "2" and sample.metadata == {"id": "row-9", "subject": "math"}
    assert "What is 1 + 1?" in sample.prompt
    assert [im.size for im in sample.images] == [(56, 84)]
    assert output["reward"] == 0.25 and output["scores"] == 0.25  # no score: filtering uses the reward
    output["extra_logs"].pop("reward_seconds")
    assert output["extra_logs"] == {"reward_score": 0.5, "reward_error": 0.0}  # OpenRLHF's own key kept


def test_fake_vllm_rollout_decodes_no_images_for_a_reward_that_does_not_read_them(
    plugin_env, processor, image_path, tmp_path, monkeypatch
):
    """A reward with ``uses_images = False`` (the accuracy and format rewards) gets no images, and
    the executor decodes none for it; one that does not say gets them (the recorder above)."""
    recorder = tmp_path / "text_reward.py"
    recorder.write_text(
        "class TextOnly:\n"
        "    uses_images = False\n"
        "    def __init__(self):\n"
        "        self.seen = []\n"
        "    def __call__(self, samples):\n"
        "        self.seen.extend(samples)\n"
        "        return [1.0 for _ in samples]\n"
    )
    executor = load_executor(plugin_env, f"{recorder}:TextOnly")
    decoded = []
    # OpenRLHF loads the executor from its file: patch the name in that module's globals.
    monkeypatch.setitem(type(executor)._result.__globals__, "load_image", decoded.append)
    engine = FakeVLLMEngine(processor.tokenizer, [RIGHT])
    output = execute(executor, processor, engine, encode_label("2", {}), [image_path])
    assert output["reward"] == 1.0 and executor.reward.seen[-1].images == [] and decoded == []


def test_fake_vllm_rollout_survives_a_reward_that_raises(plugin_env, processor, image_path, tmp_path):
    flaky = tmp_path / "flaky_reward.py"
    flaky.write_text(
        "from mm_eureka_plugin.rewards import RewardResult\n"
        "def make():\n"
        "    def reward(samples):\n"
        "        if any('3' in s.response for s in samples):\n"
        "            raise RuntimeError('boom')\n"
        "        return [RewardResult(reward=1.0, components={'accuracy': 1.0}, score=1.0) for s in samples]\n"
        "    return reward\n"
    )
    executor = load_executor(plugin_env, f"{flaky}:make")
    engine = FakeVLLMEngine(processor.tokenizer, [WRONG, RIGHT])
    failed = execute(executor, processor, engine, "2", [image_path])
    ok = execute(executor, processor, engine, "2", [image_path])
    for output in (failed, ok):
        output["extra_logs"].pop("reward_seconds")
    assert failed["reward"] == 0.0 and failed["extra_logs"] == {"accuracy": 0.0, "reward_error": 1.0}
    assert ok["reward"] == 1.0 and ok["extra_logs"] == {"accuracy": 1.0, "reward_error": 0.0}


def test_fake_vllm_openrlhf_dynamic_filtering_keeps_groups_by_mean_accuracy(
    monkeypatch, processor, image_path, openrlhf_args
):
    """OpenRLHF's SamplesGenerator, with rollout actors in Ray workers running our executor."""
    import ray

    from mm_eureka_plugin import patches
    from mm_eureka_plugin.config import CONFIG_ENV, load_recipe
    from mm_eureka_plugin.patches.flags import argv, with_plugin_flags
    from mm_eureka_plugin.patches.launch import init_ray

    for key in (CONFIG_ENV, patches.DEVICE_ENV):  # init_ray sets them in this process: undo after
        monkeypatch.setenv(key, "")
    recipe_path = os.path.join(os.path.dirname(image_path), "r.yaml")
    with open(recipe_path, "w") as f:
        f.write("plugin:\n  reward: weighted\n  accuracy_filter: [0.1, 0.9]\n  device: cpu\n")
    recipe = with_plugin_flags(load_recipe(recipe_path))
    args = openrlhf_args(*argv(recipe), "--rollout.n_samples_per_prompt", "4")

    # Per prompt (by its gold answer): 4 scripted responses. Mean accuracy: 1.0 (format varies,
    # so the total reward does too), 0.5, 0.0, 0.25.
    scripts = {
        "2": [RIGHT, RIGHT_BAD_FORMAT, RIGHT, RIGHT_BAD_FORMAT],
        "4": [RIGHT.replace("2", "4"), WRONG, RIGHT.replace("2", "4"), WRONG],
        "5": [WRONG] * 4,
        "6": [RIGHT.replace("2", "6"), WRONG, WRONG, WRONG],
    }

    class FakeRolloutActor:
        """Stands in for OpenRLHF's vLLM RolloutRayActor (no vLLM on CPU); runs the real executor."""

        def __init__(self, agent_path, scripts):
            from openrlhf.trainer.ray.vllm_engine import _load_agent_executor

            self.executor = _load_agent_executor(agent_path)
            self.scripts = scripts

        def get_num_unfinished_requests(self):
            return 0

        async def generate_responses(
            self, prompt, label, sampling_params, max_length, hf_tokenizer, num_samples=1, images=None
        ):
            from mm_eureka_plugin.data.records import decode_label

            engine = FakeVLLMEngine(hf_tokenizer.tokenizer, self.scripts[decode_label(label)[0]])
            tasks = [
                self.executor.execute(prompt, label, sampling_params, max_length, hf_tokenizer, engine, images)
                for _ in range(num_samples)
            ]
            return await asyncio.gather(*tasks)

    # pytest's importlib mode names this module in a way Ray workers cannot import: send it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    init_ray(recipe.plugin, cpu=True, num_cpus=2, include_dashboard=False)
    try:
        from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

        actor = ray.remote(num_cpus=1)(FakeRolloutActor).remote(recipe.openrlhf["train.agent_func_path"], scripts)
        generator = object.__new__(SamplesGenerator)  # the real methods; no dataloaders needed
        generator.args, generator.tokenizer, generator.vllm_engines = args, processor, [actor]
        prompt = chat_prompt(processor)
        batches = iter(
            [(["default"], [prompt], [encode_label(answer, {"id": answer})], [[image_path]]) for answer in scripts]
        )
        experiences, consumed, exhausted = generator._generate_vllm(
            batches, num_prompts=2, dynamic_filtering=True, n_samples_per_prompt=4, max_len=1024, max_new_tokens=32
        )
    finally:
        ray.shutdown()

    kept = sorted({exp.labels[0] for exp in experiences})
    assert kept == sorted(encode_label(a, {"id": a}) for a in ("4", "6"))  # all-right and all-wrong dropped
    assert consumed == 4 and len(experiences) == 8
    by_answer = {}
    for exp in experiences:
        by_answer.setdefault(exp.labels[0], []).append(exp.info["accuracy"].item())
    assert sorted(sum(v) / len(v) for v in by_answer.values()) == [0.25, 0.5]


def test_step_end_tokens_are_the_tokens_that_reach_each_step_end(processor):
    from mm_eureka_plugin.patches.agent_executor import step_end_tokens

    tokenizer = processor.tokenizer
    text = "Step 1: √9 = 3 (三).\n\nStep 2: so x² = 9 → x = ±3.<|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    ends = [decoded.index("(三).") + 4, decoded.index("±3.") + 3, 1, len(decoded)]
    for end, index in zip(ends, step_end_tokens(tokenizer, ids, ends), strict=True):
        assert len(tokenizer.decode(ids[: index + 1], skip_special_tokens=True)) >= end
        assert len(tokenizer.decode(ids[:index], skip_special_tokens=True)) < end


def test_fake_vllm_rollout_with_a_dense_prm_returns_step_rewards_at_the_steps_last_tokens(
    plugin_env, processor, image_path, prm_dir
):
    prm = {"name": "prm", "weight": 0.5, "mode": "dense", "path": str(prm_dir)}
    executor = load_executor(plugin_env, {"name": "weighted", "components": [{"name": "accuracy"}, prm]})
    response = "<step>1 + 1 means two ones.</step><step>Together they make 2.</step><answer>$2$</answer>"
    engine = FakeVLLMEngine(processor.tokenizer, [response])
    output = execute(executor, processor, engine, "2", [image_path])

    assert executor.dense and output["reward"] == 1.0  # accuracy; the PRM's credit is per step
    (start, end), tokens = output["action_ranges"][0], output["observation_tokens"]
    positions = [index for index, _ in output["step_rewards"]]
    assert len(positions) == 3 and all(start <= p < end for p in positions)
    decode = processor.tokenizer.decode
    for position, step_end in zip(positions, ["two ones.", "make 2.", "<answer>$2$"], strict=True):
        # the first token whose text completes the step (it may carry what follows, e.g. ".</")
        assert step_end in decode(tokens[start : position + 1]) and step_end not in decode(tokens[start:position])
    values = [value for _, value in output["step_rewards"]]
    assert all(0 < value < 0.5 for value in values)  # weight 0.5 times a score in (0, 1)
    assert output["extra_logs"]["prm"] == pytest.approx(min(values) / 0.5, abs=1e-6)


def test_fake_vllm_rollout_without_a_dense_reward_returns_no_step_rewards(plugin_env, processor, image_path):
    executor = load_executor(plugin_env, "weighted")
    output = execute(executor, processor, FakeVLLMEngine(processor.tokenizer, [RIGHT]), "2", [image_path])
    assert not executor.dense and "step_rewards" not in output


def test_seeded_sampling_gives_each_sample_a_seed_from_the_run_seed_prompt_and_draw(
    plugin_env, processor, image_path, monkeypatch
):
    from mm_eureka_plugin.patches import SAMPLING_SEED_ENV

    def seeds(run_seed, labels):
        monkeypatch.setenv(SAMPLING_SEED_ENV, str(run_seed))
        executor = load_executor(plugin_env, "accuracy")
        engine = FakeVLLMEngine(processor.tokenizer, [RIGHT] * len(labels))
        for label in labels:
            execute(executor, processor, engine, encode_label(label, {}), [image_path])
        return [params.seed for _, params, _ in engine.requests]

    first = seeds(42, ["2", "2", "3", "2"])
    assert len(set(first)) == 4 and all(0 <= seed < 2**31 for seed in first)
    assert seeds(42, ["2", "2", "3", "2"]) == first  # a new executor, the same run seed: the same seeds
    assert seeds(42, ["3", "2", "2", "2"]) == [first[2], first[0], first[1], first[3]]  # per prompt, not per call
    assert set(seeds(7, ["2", "2", "3", "2"])).isdisjoint(first)
    monkeypatch.delenv(SAMPLING_SEED_ENV)
    assert load_executor(plugin_env, "accuracy").run_seed is None


def test_seeded_sampling_returns_kept_groups_in_dispatch_order(plugin_env):
    import types as pytypes

    from mm_eureka_plugin.patches.samples_generator import in_dispatch_order, prompt_key

    def sample(prompt):
        return pytypes.SimpleNamespace(prompts=[prompt], labels=["l"], images=[["x.png"]])

    finished = [sample(p) for p in ("c", "c", "a", "a", "b", "b")]
    dispatched = [prompt_key(p, "l", ["x.png"]) for p in ("a", "b", "d", "c")]
    assert [s.prompts[0] for s in in_dispatch_order(finished, dispatched, 2)] == ["a", "a", "b", "b", "c", "c"]


# -- rollout executors: the turns after the first response ------------------------------------

CROP = "<crop>0, 0, 28, 28</crop>"


def load_rollout(plugin_env, rollout, reward="weighted", **section):
    from openrlhf.trainer.ray.vllm_engine import _load_agent_executor

    from mm_eureka_plugin.patches.flags import agent_executor_path

    plugin_env({"reward": reward, "rollout_executor": rollout, **section})
    return _load_agent_executor(agent_executor_path())


def test_fake_vllm_image_tools_appends_the_crop_and_scores_the_last_response(plugin_env, processor, image_path):
    executor = load_rollout(plugin_env, "image_tools")
    engine = FakeVLLMEngine(processor.tokenizer, [CROP, RIGHT])
    output = execute(executor, processor, engine, encode_label("2", {"id": "row-1"}), [image_path])

    tokens, ranges = output["observation_tokens"], output["action_ranges"]
    (first_prompt, _, first_mm), (second_prompt, second_params, second_mm) = engine.requests
    assert len(ranges) == 2 and ranges[0][0] == len(first_prompt) and ranges[1][0] == len(second_prompt)
    assert (
        second_prompt == tokens[: ranges[1][0]]
        and tokens[: ranges[0][1]] == first_prompt + tokens[ranges[0][0] : ranges[0][1]]
    )
    feedback = processor.tokenizer.decode(tokens[ranges[0][1] : ranges[1][0]])
    assert feedback.startswith("\n<|im_start|>user\nImage 2: image 1 at [0, 0, 28, 28], 56x56 pixels.<|vision_start|>")
    assert feedback.endswith("<|im_end|>\n<|im_start|>assistant\n")  # environment tokens: outside every action range
    assert len(first_mm["image"]) == 1 and len(second_mm["image"]) == 2  # the engine sees every image so far
    assert second_params.logit_bias == engine.requests[0][1].logit_bias  # vision tokens banned in every turn
    grids = output["mm_train_inputs"]["image_grid_thw"]
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    # the prompt's 56x84 image, then the 28x28 crop zoomed to the default budget's minimum, 56x56
    assert grids.tolist() == [[1, 6, 4], [1, 4, 4]]
    assert tokens.count(image_pad) == int(grids.prod(-1).sum()) // 4  # 2x2 patches merge into one token
    assert output["reward"] == 1.5 and output["scores"] == 1.0  # the final response, scored as usual
    output["extra_logs"].pop("reward_seconds")
    assert output["extra_logs"] == {
        "accuracy": 1.0,
        "format": 1.0,
        "reward_error": 0.0,
        "turns": 2.0,
        "tool_calls": 1.0,
        "tool_errors": 0.0,
    }
    assert "Image 2: image 1" in output["sample_log"]["response"] and output["sample_log"]["response"].endswith(RIGHT)


def test_fake_vllm_image_tools_answers_a_bad_call_in_text_and_counts_it(plugin_env, processor, image_path):
    executor = load_rollout(plugin_env, {"name": "image_tools", "max_turns": 3})
    engine = FakeVLLMEngine(processor.tokenizer, ["<crop image=9>0, 0, 9, 9</crop>", "<crop>rubbish</crop>", WRONG])
    output = execute(executor, processor, engine, "2", [image_path])
    assert len(engine.requests) == 3 and [len(mm["image"]) for _, _, mm in engine.requests] == [1, 1, 1]
    text = processor.tokenizer.decode(output["observation_tokens"])
    assert "Crop failed: there is no image 9" in text and "is not four numbers" in text and "last turn" in text
    assert output["extra_logs"]["tool_errors"] == 2.0 and output["extra_logs"]["turns"] == 3.0
    assert output["reward"] == 0.5 and output["extra_logs"]["reward_error"] == 0.0  # WRONG: format only


def test_fake_vllm_a_sample_out_of_tokens_ends_its_episode_truncated(plugin_env, processor, image_path):
    from vllm import SamplingParams

    executor = load_rollout(plugin_env, "image_tools")
    engine = FakeVLLMEngine(processor.tokenizer, [CROP])
    prompt = chat_prompt(processor)
    params = SamplingParams(max_tokens=16, temperature=1.0)
    # room for the prompt and the crop call, not for the crop's message (about 30 tokens)
    max_length = len(processor(text=[prompt], images=[Image.open(image_path)])["input_ids"][0]) + 26
    output = asyncio.run(executor.execute(prompt, "2", params, max_length, processor, engine, [image_path]))
    assert len(engine.requests) == 1 and output["truncated"] and len(output["observation_tokens"]) <= max_length
    assert output["extra_logs"]["tool_calls"] == 1.0 and output["reward"] == 0.0


@pytest.mark.parametrize(
    "body, error",
    [
        (
            "    def start(self, prompt):\n        if prompt.metadata.get('id') == 'row-3':\n"
            "            raise RuntimeError('no env')\n        return self\n"
            "    def step(self, response):\n        return Turn(done=True)\n",
            "raised RuntimeError in start: no env",
        ),
        (
            "    def start(self, prompt):\n        return self\n    def step(self, response):\n"
            "        return 'done' if 'think' in response else Turn(done=True)\n",
            "gave a turn that cannot be shown: it returned a str, not a Turn",
        ),
        (
            "    def start(self, prompt):\n        return self\n    def step(self, response):\n"
            "        return Turn(done='think' not in response, content=[{'type': 'image'}])\n",
            "1 image part(s) but it carries 0 image(s)",
        ),
        (
            "    def start(self, prompt):\n        return self\n    def step(self, response):\n"
            "        return Turn(done='think' not in response, content=[{'type': 'image'}], images=['/no/such.png'])\n",
            "gave a turn that cannot be written: All images failed to load",
        ),
    ],
)
def test_fake_vllm_a_rollout_executor_that_fails_gives_the_sample_reward_0_and_a_reward_error(
    plugin_env, processor, image_path, tmp_path, body, error
):
    """Each passes the contract's probe (which answers "<answer>2</answer>" on row "probe") and
    fails on this sample's row or response."""
    path = tmp_path / "bad_rollout.py"
    path.write_text("from mm_eureka_plugin.rollouts import Turn\nclass Bad:\n" + body)
    executor = load_rollout(plugin_env, f"{path}:Bad")
    label = encode_label("2", {"id": "row-3"})
    output = execute(executor, processor, FakeVLLMEngine(processor.tokenizer, [RIGHT]), label, [image_path])
    assert output["reward"] == 0.0 and output["extra_logs"]["reward_error"] == 1.0
    assert error in output["sample_log"]["error"] and "bad_rollout.py:Bad" in output["sample_log"]["error"]


def test_fake_vllm_a_multi_turn_sample_trains_with_its_crop_and_no_loss_on_environment_tokens(
    plugin_env, processor, image_path, tiny_vlm_dir, openrlhf_args
):
    """The experience OpenRLHF builds from a two-turn sample runs through OpenRLHF's Actor: the image
    tokens of the prompt and the crop match the pixel values (without the crop's pixels it fails)."""
    import torch
    from openrlhf.models.actor import Actor
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    executor = load_rollout(plugin_env, "image_tools")
    output = execute(executor, processor, FakeVLLMEngine(processor.tokenizer, [CROP, RIGHT]), "2", [image_path])
    generator = object.__new__(SamplesGenerator)
    generator.args = openrlhf_args()
    experience = generator._process_response_into_experience(output, max_len=1024)

    ranges = output["action_ranges"]
    expected = torch.zeros(len(output["observation_tokens"]) - 1)
    for start, end in ranges:
        expected[start - 1 : end - 1] = 1  # OpenRLHF's action mask is shifted by one
    assert torch.equal(experience.action_mask[0].float(), expected)
    assert experience.action_mask.sum() == sum(end - start for start, end in ranges)

    actor = Actor(str(tiny_vlm_dir), attn_implementation="sdpa", param_dtype="bf16")
    inputs = merge_mm_train_inputs(experience.mm_train_inputs, "cpu")
    with torch.no_grad():
        log_probs = actor(experience.sequences, experience.action_mask, experience.attention_mask, **inputs)
    assert log_probs.shape == experience.action_mask.shape and torch.isfinite(log_probs).all()
    prompt_only = {"pixel_values": inputs["pixel_values"][:24], "image_grid_thw": inputs["image_grid_thw"][:1]}
    with torch.no_grad(), pytest.raises(ValueError, match="Image features and image tokens do not match"):
        actor(experience.sequences, experience.action_mask, experience.attention_mask, **prompt_only)


def test_fake_vllm_a_dense_reward_credits_the_steps_of_the_last_response_after_a_crop(
    plugin_env, processor, image_path, prm_dir
):
    prm = {"name": "prm", "weight": 0.5, "mode": "dense", "path": str(prm_dir)}
    reward = {"name": "weighted", "components": [{"name": "accuracy"}, prm]}
    executor = load_rollout(plugin_env, "image_tools", reward=reward)
    response = "<step>1 + 1 means two ones.</step><step>Together they make 2.</step><answer>$2$</answer>"
    output = execute(executor, processor, FakeVLLMEngine(processor.tokenizer, [CROP, response]), "2", [image_path])
    (_, first_end), (start, end) = output["action_ranges"]
    positions = [index for index, _ in output["step_rewards"]]
    assert len(positions) == 3 and all(start <= p < end for p in positions)  # in the scored response only
    assert output["reward"] == 1.0 and output["extra_logs"]["turns"] == 2.0
