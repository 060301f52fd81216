"""OpenRLHF's flags beside the plugin: the flags it sets, the ones it refuses, the command line."""

import pytest

from mm_eureka_plugin.config import RecipeError, load_recipe
from mm_eureka_plugin.patches.flags import argv, check_recipe, with_plugin_flags

PRM_REWARD = (
    "  reward:\n    name: weighted\n    components:\n      - {name: accuracy}\n      - {name: prm, weight: 0.5%s}\n"
)
DATA_RECIPE = """\
openrlhf:
  data.max_images_per_prompt: 1
  algo.advantage.estimator: group_norm
  {flags}
plugin:
  data: {{path: train.jsonl, format: {{name: mmk12, system_prompt: none}}}}
  reward: weighted
  accuracy_filter: [0.1, 0.9]
"""


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
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
    assert argv(recipe) == [
        "--actor.model_name_or_path",
        "m",
        "--actor.freeze_visual_encoder",
        "--algo.dynamic_filtering_range",
        "0.1",
        "0.9",
    ]


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
        check_recipe(load_recipe(path))


def test_group_mean_is_refused_inside_openrlhf(tmp_path):
    path = write(tmp_path, "plugin:\n  policy_loss: {name: cpgd, aggregation: group_mean, group_size: 8}\n")
    with pytest.raises(RecipeError, match="OpenRLHF shuffles samples"):
        check_recipe(load_recipe(path))


def test_plugin_sections_set_the_openrlhf_flags_they_own(tmp_path):
    recipe = load_recipe(write(tmp_path, DATA_RECIPE.format(flags="")))
    assert recipe.plugin.data.path == str(tmp_path / "train.jsonl")
    assert recipe.plugin.data.format.params == {"system_prompt": "none"}
    flags = with_plugin_flags(recipe, "/cache/train.jsonl").openrlhf
    assert flags["data.prompt_dataset"] == "/cache/train.jsonl"
    assert flags["data.label_key"] == "mm_eureka_label" and flags["data.image_key"] == "images"
    assert flags["train.agent_func_path"].endswith("patches/agent_executor.py")
    low, high = flags["algo.dynamic_filtering_range"]
    assert flags["algo.dynamic_filtering_enable"] is True
    assert low < 0.1 < low + 1e-5 and high - 1e-5 < 0.9 < high  # OpenRLHF keeps low < mean < high


@pytest.mark.parametrize(
    "flags, message",
    [
        ("data.prompt_dataset: x.jsonl", "'openrlhf.data.prompt_dataset' is set by plugin.data"),
        ("reward.remote_url: r.py", "'openrlhf.reward.remote_url' is set by plugin.reward"),
        ("algo.dynamic_filtering_enable: true", "is set by plugin.accuracy_filter"),
        ("ds.packing_samples: true", "cannot be used with images: packing collapses the batch"),
        ("train.dynamic_batch_enable: true", "dynamic batching turns sample packing back on"),
        ("ds.ring_attn_size: 2", "ring attention turns sample packing back on"),
        ("critic.model_name_or_path: m", "critic is text-only"),
        ("data.max_images_per_prompt: 0", "must be set with plugin.data"),
    ],
)
def test_conflicting_and_vlm_incompatible_flags_are_refused(tmp_path, flags, message):
    with pytest.raises(RecipeError, match=message):
        check_recipe(load_recipe(write(tmp_path, DATA_RECIPE.format(flags=flags))))


def test_gae_is_refused_with_images(tmp_path):
    text = DATA_RECIPE.format(flags="").replace("group_norm", "gae")
    with pytest.raises(RecipeError, match="gae needs a critic"):
        check_recipe(load_recipe(write(tmp_path, text)))


@pytest.mark.parametrize("flag", ["actor.model_name_or_path: m", "eval.dataset: e.jsonl"])
def test_flags_a_synthetic_task_owns_are_refused(tmp_path, flag):
    path = write(tmp_path, f"openrlhf:\n  data.max_images_per_prompt: 1\n  {flag}\nplugin:\n  synthetic_task: {{}}\n")
    with pytest.raises(RecipeError, match=f"key 'openrlhf.{flag.split(':')[0]}' is set by plugin.synthetic_task"):
        check_recipe(load_recipe(path))


def test_an_accuracy_filter_from_zero_passes_openrlhfs_parser(tmp_path):
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    text = "openrlhf:\n  actor.adam.lr: -1.0e-7\nplugin:\n  reward: accuracy\n  accuracy_filter: [0.0, 1.0]\n"
    recipe = load_recipe(write(tmp_path, text))
    line = argv(with_plugin_flags(recipe))
    assert line[line.index("--algo.dynamic_filtering_range") + 1] == "-0.000001"
    assert line[line.index("--actor.adam.lr") + 1] == "-0.0000001"
    install(cpu=True)
    args = vars(parse_flags(line))
    assert args["algo.dynamic_filtering_range"] == [-1e-6, 1 + 1e-6]


@pytest.mark.parametrize(
    ("estimator", "ok"), [("rloo", True), ("reinforce", True), ("group_norm", False), (None, False)]
)
def test_dense_step_rewards_need_an_estimator_of_returns_to_go(tmp_path, estimator, ok):
    flags = f"openrlhf:\n  algo.advantage.estimator: {estimator}\n" if estimator else ""
    recipe = load_recipe(write(tmp_path, flags + "plugin:\n" + PRM_REWARD % ", mode: dense" + "  prm: /p\n"))
    if ok:
        check_recipe(recipe)
    else:
        with pytest.raises(RecipeError, match=f"is {(estimator or 'gae')!r}, but a reward credits step rewards"):
            check_recipe(recipe)
    check_recipe(load_recipe(write(tmp_path, flags + "plugin:\n" + PRM_REWARD % "" + "  prm: /p\n")))  # sequence


def test_each_run_keeps_its_checkpoints_under_its_own_output_dir_by_absolute_paths(tmp_path, monkeypatch):
    """OpenRLHF's default ckpt.path (./ckpt/checkpoints_ppo_ray) is shared by every run: --resume of
    one recipe would load another's state and rotation would delete it. Relative paths would be
    resolved in each Ray worker's own working directory."""
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(write(tmp_path, "openrlhf:\n  ckpt.output_dir: runs/a\n"))
    flags = with_plugin_flags(recipe).openrlhf
    assert flags["ckpt.output_dir"] == str(tmp_path / "runs" / "a")
    assert flags["ckpt.path"] == str(tmp_path / "runs" / "a" / "checkpoints")
    chosen = load_recipe(write(tmp_path, "openrlhf:\n  ckpt.output_dir: runs/a\n  ckpt.path: elsewhere/ck\n"))
    assert with_plugin_flags(chosen).openrlhf["ckpt.path"] == str(tmp_path / "elsewhere" / "ck")
