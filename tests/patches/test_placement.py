"""The placement preflight: the shipped recipes' GPU groups placed on clusters that hold them, and
refused, naming the group and the fix, on clusters where Ray would wait forever."""

from pathlib import Path

import pytest

from mm_eureka_plugin.config import load_recipe
from mm_eureka_plugin.patches.placement import PlacementError, check_plan, parse_cluster, plan

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PRM = "plugin.prm={path: /prm, num_gpus: %s}"


def groups(name, *overrides, cpu=False):
    from mm_eureka_plugin.patches import install
    from mm_eureka_plugin.patches.flags import argv, with_plugin_flags
    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    recipe = load_recipe(RECIPES / name, list(overrides))
    install(cpu=True)
    return plan(parse_flags(argv(with_plugin_flags(recipe))), recipe.plugin, cpu)


def test_the_7b_recipe_fills_one_node_and_a_prm_server_beside_it_cannot_be_placed():
    assert (
        check_plan(groups("mm-eureka-qwen2.5vl-7b.yaml"), [8]).splitlines()[-1] == "| used / cluster | 8 / 8 | 8 / 8 |"
    )
    for gpus in (1, 0.5):  # a fraction does not help: that GPU has less than one whole free
        with pytest.raises(
            PlacementError, match=r"actor \+ vLLM \(colocated\) needs 8 whole GPUs, but after PRM server"
        ):
            check_plan(groups("mm-eureka-qwen2.5vl-7b.yaml", PRM % gpus), [8])
    check_plan(groups("mm-eureka-qwen2.5vl-7b.yaml", PRM % 0), [8])  # the PRM on CPU
    table = check_plan(groups("mm-eureka-qwen2.5vl-7b.yaml", PRM % 1), [8, 8])  # or on a node of its own
    assert "| PRM server | 1 | 1 | 0 |" in table and "| actor + vLLM (colocated) | 8 | 0 | 8 |" in table


def test_the_32b_second_stage_needs_its_reference_colocated_with_the_actor():
    first = groups("mm-eureka-qwen2.5vl-32b.yaml")
    assert [(g.name, g.bundles, g.chunk) for g in first] == [("vLLM engines", 16, 4), ("actor", 32, 1)]
    check_plan(first, parse_cluster("6x8"))
    with pytest.raises(PlacementError, match=r"ref needs 8 whole GPUs, but after vLLM engines, actor"):
        check_plan(groups("mm-eureka-qwen2.5vl-32b.yaml", "openrlhf.algo.kl.init_coef=1e-3"), parse_cluster("6x8"))
    colocated = groups(
        "mm-eureka-qwen2.5vl-32b.yaml",
        "openrlhf.algo.kl.init_coef=1e-3",
        "openrlhf.train.colocate_actor_ref=true",
        "openrlhf.ref.num_nodes=4",
        "openrlhf.ref.num_gpus_per_node=8",
    )
    assert (
        check_plan(colocated, parse_cluster("6x8")).splitlines()[2]
        == "| actor + ref (colocated) | 32 | 8 | 8 | 8 | 8 | 0 | 0 |"
    )


def test_an_engine_that_would_straddle_nodes_is_refused():
    engines = groups(
        "mm-eureka-qwen2.5vl-32b.yaml", "openrlhf.vllm.tensor_parallel_size=3", "openrlhf.vllm.num_engines=5"
    )
    with pytest.raises(PlacementError, match="tensor_parallel_size 3 does not divide the GPUs per node"):
        check_plan(engines, parse_cluster("6x8"))
    with pytest.raises(
        PlacementError, match=r"actor needs 32 whole GPUs, but after vLLM engines, the cluster has 0, 0, 8, 8, 8"
    ):
        check_plan(groups("mm-eureka-qwen2.5vl-32b.yaml"), parse_cluster("5x8"))  # a node short


def test_clusters_are_read_as_nodes_by_gpus_or_gpus_per_node():
    assert parse_cluster("2x8") == [8.0, 8.0] and parse_cluster("8,4") == [8.0, 4.0]
    with pytest.raises(PlacementError, match="write NODESxGPUS"):
        parse_cluster("two nodes")
    with pytest.raises(PlacementError, match="no alive node"):
        check_plan(groups("mm-eureka-qwen2.5vl-7b.yaml"), [])


def test_the_smoke_recipe_on_cpu_asks_for_one_logical_gpu_per_model():
    assert [(g.name, g.bundles) for g in groups("smoke-cpu.yaml", cpu=True)] == [("vLLM engines", 1), ("actor", 1)]
