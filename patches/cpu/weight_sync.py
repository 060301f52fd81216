"""The process group a CPU run's weight sync uses: TCPStore rendezvous plus gloo.

OpenRLHF 0.11.2 broadcasts the trained weights from DeepSpeed rank 0 to every rollout engine
over a group built by ``stateless_init_process_group`` (always a vLLM NCCL communicator). On CPU
both sides join a :class:`GlooSyncGroup` instead; it offers the one method OpenRLHF calls,
``broadcast(tensor, src, stream)``, and lives beside the default torch.distributed group.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT = timedelta(minutes=10)


class GlooSyncGroup:
    """A gloo group of ``world_size`` ranks that rendezvous at ``host:port`` (rank 0 hosts the store)."""

    def __init__(self, host: str, port: int, rank: int, world_size: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=TIMEOUT)
        self.group = dist.ProcessGroupGloo(self.store, rank, world_size, TIMEOUT)

    def broadcast(self, tensor: torch.Tensor, src: int = 0, stream=None) -> None:
        """Broadcast ``tensor`` in place from rank ``src`` (``stream`` is accepted and ignored)."""
        options = dist.BroadcastOptions()
        options.rootRank = src
        options.rootTensor = 0
        self.group.broadcast([tensor], options).wait()
