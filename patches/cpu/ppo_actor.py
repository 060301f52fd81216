"""``openrlhf.trainer.ray.ppo_actor`` on CPU: the weight-sync group is a gloo group.

``ActorPPOTrainer._init_vllm_sync_group`` calls the module name ``stateless_init_process_group``
(a vLLM NCCL communicator); on CPU that name builds a :class:`GlooSyncGroup`, which the CPU
rollout actor joins. OpenRLHF's own ``broadcast_to_vllm`` then runs unchanged.
"""

from __future__ import annotations

from types import ModuleType


def stateless_init_process_group(master_address, master_port, rank, world_size, device):
    from mm_eureka_plugin.patches.cpu.weight_sync import GlooSyncGroup

    return GlooSyncGroup(master_address, master_port, rank, world_size)


def patch(module: ModuleType) -> None:
    module.stateless_init_process_group = stateless_init_process_group
