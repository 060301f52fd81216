"""Scale-out rehearsed on CPU: `mm-eureka train recipes/smoke-cpu.yaml` joins a two-node Ray cluster
on this machine (``ray.cluster_utils``, RAY_ADDRESS) and runs OpenRLHF's loop with the actor on two
DeepSpeed ZeRO-3 ranks (the 32B recipe's stage, whose weight sync gathers the sharded parameters)
and the rollout engine, placed by Ray across both nodes, through the launcher's placement and node
checks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_two_steps_on_a_two_node_cluster_with_a_zero3_actor(tmp_path, smoke_train):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=3, num_gpus=2)  # logical GPUs: the slots OpenRLHF's placement asks for
    try:
        cluster.wait_for_nodes()
        sets = {
            "openrlhf.ckpt.output_dir": tmp_path,
            "openrlhf.logger.tensorboard_dir": tmp_path / "tensorboard",
            "openrlhf.actor.num_gpus_per_node": 2,
            "openrlhf.ds.zero_stage": 3,
            "openrlhf.train.num_episodes": 1,
            "openrlhf.eval.steps": 2,
            "openrlhf.rollout.batch_size": 4,
            "openrlhf.rollout.n_samples_per_prompt": 4,
            "openrlhf.rollout.micro_batch_size": 8,
            "openrlhf.train.batch_size": 16,
            "openrlhf.train.micro_batch_size": 8,
            "plugin.synthetic_task.train_size": 8,
            "plugin.synthetic_task.eval_size": 4,
            "plugin.accuracy_filter": "[0.0, 1.0]",  # keeps every group: 8 prompts / 4 per step
        }
        result = subprocess.run(
            smoke_train(sets),
            cwd=REPO,
            env={**os.environ, "RAY_ADDRESS": cluster.address},
            capture_output=True,
            text=True,
            timeout=900,
            start_new_session=True,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-5000:]
        lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        train = [line for line in lines if line["kind"] == "train"]
        assert [line["step"] for line in train] == [1, 2]
        assert all(
            line["metrics"]["timing/broadcast"] > 0 for line in train
        )  # gathered ZeRO-3 weights reached the engine
        assert all(line["metrics"]["policy_loss"] == line["metrics"]["policy_loss"] for line in train)  # not NaN
        assert any(line["kind"] == "eval" for line in lines)
        assert "| used / cluster | 3 / 3 |" in output  # the launcher's placement table, on both nodes

        ray.init(address=cluster.address)
        actors = ray._private.state.actors().values()  # the GCS's record, dead actors included

        def nodes_of(name):
            return [actor["Address"]["NodeID"] for actor in actors if actor["ActorClassName"].endswith(name)]

        ranks, engines = nodes_of("PolicyModelActor"), nodes_of("CPURolloutActor")
        assert len(ranks) == 2 and len(engines) == 1
        assert len({*ranks, *engines}) == 2  # the run used both nodes
        assert (tmp_path / "checkpoints").is_dir()  # under the run's own output dir
    finally:
        ray.shutdown()
        cluster.shutdown()
