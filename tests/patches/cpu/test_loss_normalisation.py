"""A plugin policy loss through OpenRLHF's per-step normalisation and DeepSpeed's gradient
accumulation and data parallelism: two gloo ranks, two micro-batches each, must give the gradient
of one loss over the whole step's batch.

Each rank runs a real DeepSpeed engine (ZeRO-0, fp32, SGD; DeepSpeed scales each backward by
1 / accumulation and averages gradients over ranks), feeds its micro-batches through OpenRLHF's
``iter_grad_accum_global_norm`` (the step's global token and sequence counts) and
:class:`PluginPolicyLoss`, as ``ActorPPOTrainer.ppo_train`` does. The "policy" is a parameter
holding the step's log-probs, so the gradient compares exactly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

ROWS, TOKENS, RANKS, MICRO = 8, 5, 2, 2  # 8 sequences = 2 ranks x 2 micro-batches x 2 rows


def step_inputs():
    """Old log-probs, advantages and a ragged action mask for the step's 8 sequences."""
    generator = torch.Generator().manual_seed(0)
    old = torch.randn(ROWS, TOKENS, generator=generator) * 0.3
    advantages = torch.randn(ROWS, 1, generator=generator)
    lengths = torch.tensor([5, 1, 2, 5, 3, 0, 4, 2])  # ragged, one empty: per-micro-batch counts differ
    mask = torch.arange(TOKENS)[None, :] < lengths[:, None]
    start = old + torch.randn(ROWS, TOKENS, generator=generator) * 0.3
    return start, old, advantages, mask


def make_loss(aggregation: str):
    from mm_eureka_plugin.losses import CPGDLoss

    return CPGDLoss(clip_eps=0.2, drift_coef=0.5, drift_clip=2.0, aggregation=aggregation)


def rank_gradient(rank: int, port: int, aggregation: str, global_norm: bool, out: str) -> None:
    """One rank's step (run as ``python THIS_FILE ...``); saves the boundary gradient to ``out``."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(RANKS), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    from mm_eureka_plugin.patches import install

    install(cpu=True)
    import deepspeed
    from openrlhf.utils.loss_utils import iter_grad_accum_global_norm

    from mm_eureka_plugin.patches.ppo_actor import PluginPolicyLoss

    deepspeed.init_distributed("gloo")
    start, old, advantages, mask = step_inputs()
    policy = torch.nn.Module()
    policy.log_probs = torch.nn.Parameter(start.clone())
    policy.forward = lambda rows: policy.log_probs[rows]
    engine, *_ = deepspeed.initialize(
        model=policy,
        optimizer=torch.optim.SGD(policy.parameters(), lr=1.0),
        config={
            "train_micro_batch_size_per_gpu": MICRO,
            "gradient_accumulation_steps": 2,
            "zero_optimization": {"stage": 0},
            "gradient_clipping": 0.0,
        },
    )
    loss_fn = PluginPolicyLoss(make_loss(aggregation))
    strategy = type("Strategy", (), {"ds_device_mesh": None})()  # no mesh: the world is the dp group
    micro_batches = [torch.arange(i, i + MICRO) for i in range(rank * 2 * MICRO, (rank + 1) * 2 * MICRO, MICRO)]
    if global_norm:  # the step's counts, as ppo_train pairs them
        accumulation = engine.gradient_accumulation_steps()
        batches = iter_grad_accum_global_norm(micro_batches, strategy, accumulation, lambda rows: mask[rows])
    else:  # each micro-batch normalised by its own counts, as the loss alone would
        batches = ((rows, {}) for rows in micro_batches)
    for number, (rows, info) in enumerate(batches):
        loss, *_ = loss_fn(engine(rows), old[rows], advantages[rows], mask[rows], **info)
        engine.backward(loss)
        if number == 1:  # the accumulation boundary: gradients averaged over the ranks
            torch.save(policy.log_probs.grad.clone(), out)
        engine.step()
    torch.distributed.destroy_process_group()


def distributed_gradient(tmp_path, aggregation: str, global_norm: bool = True) -> torch.Tensor:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    outs = [tmp_path / f"{aggregation}-{global_norm}-{rank}.pt" for rank in range(RANKS)]
    ranks = [
        subprocess.Popen(
            [sys.executable, __file__, str(rank), str(port), aggregation, str(int(global_norm)), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank, out in enumerate(outs)
    ]
    try:
        logs = [process.communicate(timeout=600)[0] for process in ranks]
    finally:
        for process in ranks:
            process.kill()
    for process, log in zip(ranks, logs):
        assert process.returncode == 0, log[-4000:]
    gradients = [torch.load(out) for out in outs]
    assert torch.equal(gradients[0], gradients[1])  # DeepSpeed's all-reduce
    return gradients[0]


def single_batch_gradient(aggregation: str) -> torch.Tensor:
    start, old, advantages, mask = step_inputs()
    log_probs = start.clone().requires_grad_(True)
    loss, _ = make_loss(aggregation)(log_probs, old, advantages, mask)
    (gradient,) = torch.autograd.grad(loss, log_probs)
    return gradient


@pytest.mark.parametrize("aggregation", ["seq_mean_token_mean", "token_mean"])
def test_two_ranks_with_accumulation_give_the_single_batch_gradient(tmp_path, aggregation):
    reference = single_batch_gradient(aggregation)
    assert torch.allclose(distributed_gradient(tmp_path, aggregation), reference, rtol=1e-5, atol=1e-7)
    # the check can fail: each micro-batch normalised by its own counts weighs the step's
    # sequences (tokens) unevenly
    assert not torch.allclose(distributed_gradient(tmp_path, aggregation, global_norm=False), reference, rtol=1e-3)


if __name__ == "__main__":
    rank_gradient(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5])
