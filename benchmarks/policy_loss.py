"""Policy loss cost: CPGD as training runs it against OpenRLHF's PolicyLoss(ppo), forward + backward.

Both get the same tensors (log-probs with gradients, old log-probs, per-token advantages, a
ragged action mask) and OpenRLHF's call (``dp_size``, ``batch_num_tokens``). Ours is
:class:`~mm_eureka_plugin.losses.CPGDLoss` inside ``patches/ppo_actor.py``'s ``PluginPolicyLoss``
adapter (what ``ActorPPOTrainer`` calls with ``plugin.policy_loss: cpgd``); the baseline is
``openrlhf.models.loss.PolicyLoss`` with ``policy_loss_type="ppo"``, eps 0.2. Each run times
``--iters`` forward + backward passes; the table gives the median of ``--repeats`` runs.

    .venv/bin/python benchmarks/policy_loss.py [--batch 32] [--tokens 1024] [--iters 50] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from common import machine_line, timed


def tensors(batch: int, tokens: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(batch, tokens, generator=g) * 3
    lengths = torch.randint(tokens // 4, tokens + 1, (batch,), generator=g)
    mask = torch.arange(tokens)[None, :] < lengths[:, None]
    advantages = torch.randn(batch, 1, generator=g).expand(batch, tokens).contiguous()
    return {
        "log_probs": (old + 0.1 * torch.randn(batch, tokens, generator=g)).requires_grad_(True),
        "old_log_probs": old,
        "advantages": advantages,
        "action_mask": mask,
    }


def seconds_per_pass(loss_fn, inputs: dict[str, torch.Tensor], iters: int) -> float:
    """Seconds per forward + backward, over ``iters`` passes."""
    tokens = inputs["action_mask"].sum()

    def passes() -> None:
        for _ in range(iters):
            inputs["log_probs"].grad = None
            loss = loss_fn(**inputs, dp_size=1, batch_num_tokens=tokens)[0]
            loss.backward()

    return timed(passes)[0] / iters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from mm_eureka_plugin.patches import install

    install(cpu=not torch.cuda.is_available())  # before OpenRLHF: stand-ins where flash-attn, vLLM are missing
    from openrlhf.models.loss import PolicyLoss

    from mm_eureka_plugin.losses import CPGDLoss
    from mm_eureka_plugin.patches.ppo_actor import PluginPolicyLoss

    torch.set_num_threads(1)
    inputs = tensors(args.batch, args.tokens)
    ours, base = PluginPolicyLoss(CPGDLoss()), PolicyLoss(0.2, 0.2, policy_loss_type="ppo")
    seconds_per_pass(ours, inputs, 3), seconds_per_pass(base, inputs, 3)  # warm-up
    ours_times, base_times = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both
        ours_times.append(seconds_per_pass(ours, inputs, args.iters))
        base_times.append(seconds_per_pass(base, inputs, args.iters))
    ours_ms, base_ms = 1000 * statistics.median(ours_times), 1000 * statistics.median(base_times)
    print(machine_line(f"on CPU, torch {torch.__version__}, 1 thread"))
    print(f"{args.batch} x {args.tokens} tokens, forward + backward, median of {args.repeats} runs of {args.iters}\n")
    print("| loss | ms per forward + backward |")
    print("|---|---|")
    print(f"| OpenRLHF PolicyLoss(ppo) (baseline) | {base_ms:.3f} |")
    print(f"| CPGD through PluginPolicyLoss (ours) | {ours_ms:.3f} |")
    print(f"\nratio ours / baseline: {ours_ms / base_ms:.3f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
