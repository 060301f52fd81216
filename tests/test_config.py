"""Recipe loading and validation: every error names the key and the fix."""

import pytest

from mm_eureka_plugin.config import PluginConfig, RecipeError, load_recipe, parse_plugin_section


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_flags_become_argv_in_order(tmp_path):
    recipe = load_recipe(
        write(
            tmp_path,
            "openrlhf:\n  actor.model_name_or_path: m\n  actor.freeze_visual_encoder: true\n"
            "  ds.packing_samples: false\n  algo.dynamic_filtering_range: [0.1, 0.9]\n  data.prompt_dataset: null\n",
        )
    )
    assert recipe.openrlhf_argv() == [
        "--actor.model_name_or_path",
        "m",
        "--actor.freeze_visual_encoder",
        "--algo.dynamic_filtering_range",
        "0.1",
        "0.9",
    ]


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
        ("plugin:\n  policy_los: cpgd\n", "unknown key 'policy_los'. Valid keys: policy_loss, advantage_weight"),
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


@pytest.mark.parametrize(
    "flags, message",
    [
        ("actor.policy_loss_type: gspo", "replaces OpenRLHF's loss"),
        ("actor.eps_clip: 0.3", "no effect with plugin.policy_loss 'cpgd'"),
        ("actor.loss_agg_mode: seq-mean-token-mean", "must be token-mean"),
        ("algo.advantage.is_correction_level: token", "not applied by plugin.policy_loss"),
        ("algo.advantage.estimator: group_norm", "Set 'algo.advantage.estimator: dr_grpo'"),
    ],
)
def test_openrlhf_flags_the_plugin_would_silently_override_are_refused(tmp_path, flags, message):
    path = write(tmp_path, f"openrlhf:\n  {flags}\nplugin:\n  policy_loss: cpgd\n  advantage_weight: std\n")
    with pytest.raises(RecipeError, match=message):
        load_recipe(path).validate()


def test_group_mean_is_refused_inside_openrlhf(tmp_path):
    path = write(tmp_path, "plugin:\n  policy_loss: {name: cpgd, aggregation: group_mean, group_size: 8}\n")
    with pytest.raises(RecipeError, match="OpenRLHF shuffles samples"):
        load_recipe(path).validate()


def test_plugin_config_round_trips_through_the_environment(monkeypatch):
    config = parse_plugin_section({"policy_loss": {"name": "cpgd", "drift_coef": 0.02}, "device": "cpu"})
    monkeypatch.setenv("MM_EUREKA_PLUGIN_CONFIG", config.to_json())
    assert PluginConfig.from_env() == config
    monkeypatch.delenv("MM_EUREKA_PLUGIN_CONFIG")
    assert PluginConfig.from_env() == PluginConfig()
