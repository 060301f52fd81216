"""Recipe loading and validation: every error names the key and the fix."""

import pytest

from mm_eureka_plugin.config import PluginConfig, RecipeError, as_recipe, load_recipe, parse_plugin_section


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_overrides(tmp_path):
    path = write(tmp_path, "openrlhf:\n  actor.adam.lr: 1.0e-6\nplugin:\n  policy_loss: cpgd\n")
    recipe = load_recipe(path, ["openrlhf.actor.adam.lr=2e-6", "plugin.policy_loss.drift_coef=0.05"])
    assert recipe.openrlhf["actor.adam.lr"] == 2e-6
    assert recipe.plugin.policy_loss.name == "cpgd"
    assert recipe.plugin.policy_loss.params == {"drift_coef": 0.05}
    with pytest.raises(RecipeError, match="openrlhf.FLAG=VALUE"):
        load_recipe(path, ["actor.adam.lr=2e-6"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("openrlhf: {}\nplugins: {}\n", "unknown top-level key.*plugins.*two sections"),
        (
            "plugin:\n  policy_los: cpgd\n",
            "unknown key 'policy_los'. Valid keys: data, reward, policy_loss, advantage_weight",
        ),
        ("plugin:\n  policy_loss: {clip_eps: 0.2}\n", "key 'plugin.policy_loss' needs 'name'"),
        ("plugin:\n  policy_loss: [cpgd]\n", "key 'plugin.policy_loss' must be a component name or a mapping"),
        ("plugin:\n  device: gpu\n", "key 'plugin.device' must be one of auto, cuda, cpu"),
        ("openrlhf:\n  actor.adam: {lr: 1}\n", "'openrlhf.actor.adam' must be a scalar or a list"),
        ("openrlhf:\n  'actor lr': 1\n", "not an OpenRLHF flag name"),
        (
            "plugin:\n  policy_loss: cpdg\n",
            "key 'plugin.policy_loss': unknown policy_loss 'cpdg'. Valid names: cpgd, ppo",
        ),
        (
            "plugin:\n  policy_loss: {name: cpgd, clip_eps: high}\n",
            "key 'plugin.policy_loss': parameter 'clip_eps' of policy_loss 'cpgd' must be float",
        ),
        ("plugin:\n  policy_loss: {name: cpgd, clip_eps: 1.5}\n", "key 'plugin.policy_loss'.*clip_eps must be in"),
        (
            "plugin:\n  advantage_weight: ./missing.py:make\n",
            "key 'plugin.advantage_weight'.*does not exist. Fix the path",
        ),
        ("- a\n- b\n", "a recipe is a mapping"),
        ("openrlhf: [\n", "not valid YAML"),
    ],
)
def test_malformed_recipes_name_the_key_and_the_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError, match=message) as err:
        load_recipe(path).validate()
    assert str(path) in str(err.value)


def test_file_references_are_relative_to_the_recipe(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.py").write_text("import torch\ndef make():\n    return lambda r: torch.ones_like(r)\n")
    path = write(
        tmp_path / "sub",
        "openrlhf:\n  algo.advantage.estimator: dr_grpo\nplugin:\n  advantage_weight: ./w.py:make\n",
    )
    recipe = load_recipe(path)
    assert recipe.plugin.advantage_weight.name == f"{tmp_path / 'sub' / 'w.py'}:make"
    assert recipe.validate()["advantage_weight"] is not None


def test_plugin_config_round_trips_through_the_environment(monkeypatch):
    config = parse_plugin_section({"policy_loss": {"name": "cpgd", "drift_coef": 0.02}, "device": "cpu"})
    monkeypatch.setenv("MM_EUREKA_PLUGIN_CONFIG", config.to_json())
    assert PluginConfig.from_env() == config
    monkeypatch.delenv("MM_EUREKA_PLUGIN_CONFIG")
    assert PluginConfig.from_env() == PluginConfig()


@pytest.mark.parametrize(
    "rollout, cpu, engine",
    [
        ("auto", False, "vllm"),
        ("auto", True, "transformers"),
        ("vllm", True, "vllm"),
        ("transformers", True, "transformers"),
    ],
)
def test_the_rollout_engine_follows_the_recipe_else_the_device(rollout, cpu, engine):
    assert parse_plugin_section({"rollout": rollout}).rollout_engine(cpu) == engine


@pytest.mark.parametrize(
    "plugin, message",
    [
        ("accuracy_filter: [0.9, 0.1]", "0 <= low < high <= 1"),
        ("accuracy_filter: 0.5", "must be \\[low, high\\]"),
        ("data: {path: a.jsonl}", "needs 'format'"),
        (
            "data: {path: a.jsonl, format: mmk12, on_bad_row: ignore}",
            "parameter 'on_bad_row' of key 'plugin.data' must be one of 'error', 'skip', got 'ignore'",
        ),
        ("data: {path: a.jsonl, format: mmk12, max_pixels: 1, min_pixels: 2}", "exceeds max_pixels"),
        (
            "data: {path: a.jsonl, format: mmk12, colour: red}",
            "unknown parameter 'colour' for key 'plugin.data'. Valid parameters: format, path",
        ),
        ("data: {path: a.jsonl, format: mmk13}", "key 'plugin.data.format': unknown data_format 'mmk13'"),
        ("reward: acuracy", "key 'plugin.reward': unknown reward 'acuracy'. Valid names: accuracy"),
        ("rollout: hf", "key 'plugin.rollout' must be one of auto, vllm, transformers, got 'hf'"),
        (
            "rollout_executor: tools",
            "key 'plugin.rollout_executor': unknown rollout_executor 'tools'. Valid names: image_tools, single_turn",
        ),
        (
            "rollout_executor: {name: image_tools, coordinates: percent}",
            "key 'plugin.rollout_executor': parameter 'coordinates' of rollout_executor 'image_tools' must be one of "
            "'pixels', 'normalized', got 'percent'",
        ),
    ],
)
def test_bad_plugin_data_reward_and_filter_settings(tmp_path, plugin, message):
    path = write(tmp_path, f"openrlhf:\n  data.max_images_per_prompt: 1\nplugin:\n  {plugin}\n")
    with pytest.raises(RecipeError, match=message):
        load_recipe(path).validate()


def test_accuracy_filter_needs_the_plugin_reward(tmp_path):
    with pytest.raises(RecipeError, match="choose one with 'plugin.reward'"):
        load_recipe(write(tmp_path, "plugin:\n  accuracy_filter: [0.1, 0.9]\n")).validate()


def test_a_rollout_executor_needs_the_plugin_reward(tmp_path):
    with pytest.raises(RecipeError, match="'plugin.rollout_executor' runs in the plugin's rollout.*'plugin.reward'"):
        load_recipe(write(tmp_path, "plugin:\n  rollout_executor: image_tools\n")).validate()
    recipe = load_recipe(
        write(tmp_path, "plugin:\n  reward: accuracy\n  rollout_executor: {name: image_tools, max_turns: 2}\n")
    )
    assert recipe.validate()["rollout_executor"].max_turns == 2


def test_nested_overrides_reach_component_parameters(tmp_path):
    path = write(tmp_path, "plugin:\n  data: {path: train.jsonl, format: mmk12}\n  reward: weighted\n")
    recipe = load_recipe(path, ["plugin.data.format.system_prompt=mm-eureka-7b", "plugin.reward.score_from=accuracy"])
    assert recipe.plugin.data.format.params == {"system_prompt": "mm-eureka-7b"}
    assert as_recipe(recipe.plugin.reward) == {"name": "weighted", "score_from": "accuracy"}
    with pytest.raises(RecipeError, match=r"'plugin.accuracy_filter' must be \[low, high\].*got \{'low': 0.2\}"):
        load_recipe(path, ["plugin.accuracy_filter.low=0.2"])
    with pytest.raises(RecipeError, match="the plugin section has no key 'nothing'. Valid keys: data, reward"):
        load_recipe(path, ["plugin.nothing.x=1"])
    # a section the recipe leaves out is created, and then checked like one written in the recipe
    with pytest.raises(RecipeError, match="unknown parameter 'sed' for key 'plugin.synthetic_task'"):
        load_recipe(write(tmp_path, "plugin: {}\n"), ["plugin.synthetic_task.sed=1"])
    task = load_recipe(write(tmp_path, "plugin: {}\n"), ["plugin.synthetic_task.seed=3"]).plugin.synthetic_task
    assert task.seed == 3


def test_a_synthetic_task_provides_the_model_and_the_data_under_the_output_dir(tmp_path):
    text = (
        f"openrlhf:\n  ckpt.output_dir: {tmp_path / 'run'}\n  data.max_images_per_prompt: 1\n"
        "plugin:\n  synthetic_task: {train_size: 16, blank: true}\n  reward: accuracy\n"
    )
    recipe = load_recipe(write(tmp_path, text))
    recipe.validate()
    task = tmp_path / "run" / "task"
    assert recipe.synthetic_task_dir == task
    assert as_recipe(recipe.plugin.synthetic_task) == {
        "seed": 0,
        "train_size": 16,
        "eval_size": 32,
        "blank": True,
        "kind": "colour",
    }
    assert recipe.plugin.data.path == str(task / "train.jsonl") and recipe.plugin.data.format.name == "openrlhf"
    # The config reaches Ray workers intact (as JSON).
    assert parse_plugin_section(as_recipe(recipe.plugin)) == recipe.plugin


@pytest.mark.parametrize(
    "plugin, message",
    [
        ("synthetic_task: {train_size: 2}", "key 'plugin.synthetic_task'.train_size must be at least 4, got 2"),
        (
            "synthetic_task: {blank: yes please}",
            "parameter 'blank' of key 'plugin.synthetic_task' must be bool, got 'yes please'",
        ),
        (
            "synthetic_task: {colours: 5}",
            "unknown parameter 'colours' for key 'plugin.synthetic_task'. Valid parameters: seed",
        ),
        ("synthetic_task: [1]", "must be a mapping"),
        (
            "synthetic_task: {}\n  data: {path: a.jsonl, format: openrlhf}",
            "'plugin.data.path' is set by plugin.synthetic_task",
        ),
    ],
)
def test_bad_synthetic_task_settings(tmp_path, plugin, message):
    path = write(tmp_path, f"openrlhf:\n  data.max_images_per_prompt: 1\nplugin:\n  {plugin}\n")
    with pytest.raises(RecipeError, match=message):
        load_recipe(path).validate()


PRM_REWARD = (
    "  reward:\n    name: weighted\n    components:\n      - {name: accuracy}\n      - {name: prm, weight: 0.5%s}\n"
)


def test_the_prm_server_section_is_parsed_with_its_path_made_absolute(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "plugin:\n" + PRM_REWARD % "" + "  prm: {path: ckpt/prm, num_gpus: 0.5, batch_size: 4}\n")
    )
    recipe.validate()
    prm = recipe.plugin.prm
    assert prm.path == str(tmp_path / "ckpt" / "prm") and prm.num_gpus == 0.5 and prm.batch_size == 4
    assert prm.max_wait_ms == 20.0
    assert parse_plugin_section(as_recipe(recipe.plugin)) == recipe.plugin  # it reaches Ray workers intact
    assert load_recipe(write(tmp_path, "plugin:\n  prm: /abs/prm\n" + PRM_REWARD % "")).plugin.prm.path == "/abs/prm"


@pytest.mark.parametrize(
    ("prm", "message"),
    [
        ("{num_gpus: 1}", r"plugin.prm' needs 'path'"),
        ("{path: p, batch_size: 2.5}", r"parameter 'batch_size' of key 'plugin.prm' must be int, got 2.5"),
        ("{path: p, num_gpus: -1}", r"key 'plugin.prm'.num_gpus must be at least 0, got -1"),
        ("{path: p, gpus: 1}", r"unknown parameter 'gpus' for key 'plugin.prm'. Valid parameters: path, num_gpus"),
    ],
)
def test_a_bad_prm_server_section_names_the_key(tmp_path, prm, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, f"plugin:\n  prm: {prm}\n"))


def test_the_prm_reward_and_the_prm_server_come_together(tmp_path):
    with pytest.raises(RecipeError, match=r"uses the prm reward.*set 'plugin.prm: \{path"):
        load_recipe(write(tmp_path, "plugin:\n" + PRM_REWARD % "")).validate()
    with pytest.raises(RecipeError, match="plugin.prm' starts a PRM server, but no reward uses it"):
        load_recipe(write(tmp_path, "plugin:\n  reward: weighted\n  prm: /p\n")).validate()
    # A prm reward with its own checkpoint scores in-process: no server needed.
    load_recipe(write(tmp_path, "plugin:\n" + PRM_REWARD % ", path: /p")).validate()


def test_dense_step_rewards_refuse_advantage_weights(tmp_path):
    text = "openrlhf:\n  algo.advantage.estimator: dr_grpo\nplugin:\n" + PRM_REWARD % ", mode: dense"
    recipe = load_recipe(write(tmp_path, text + "  prm: /p\n  advantage_weight: std\n"))
    with pytest.raises(RecipeError, match="plugin.advantage_weight' weights group-centred rewards"):
        recipe.validate()
