"""CPU stand-in for the parts of ``flash_attn`` OpenRLHF 0.11.2 imports (``bert_padding`` and
``utils.distributed.all_gather``), in plain torch with flash-attn's semantics."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange

__version__ = "2.8.3+cpu.standin"
__all__ = ["all_gather", "index_first_axis", "pad_input", "rearrange", "unpad_input"]


def index_first_axis(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows ``indices`` of ``tensor`` along its first axis."""
    return tensor[indices]


def unpad_input(hidden_states: torch.Tensor, attention_mask: torch.Tensor, unused_mask=None):
    """Drop padding: ``(tokens, indices, cu_seqlens, max_seqlen, used_seqlens)`` as flash-attn returns."""
    all_masks = attention_mask if unused_mask is None else attention_mask + unused_mask
    seqlens = all_masks.sum(dim=-1, dtype=torch.int32)
    used_seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(all_masks.flatten(), as_tuple=False).flatten()
    max_seqlen = int(seqlens.max().item()) if seqlens.numel() else 0
    cu_seqlens = F.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    tokens = index_first_axis(rearrange(hidden_states, "b s ... -> (b s) ..."), indices)
    return tokens, indices, cu_seqlens, max_seqlen, used_seqlens


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Inverse of :func:`unpad_input`: scatter tokens back into a zero ``[batch, seqlen, ...]`` tensor."""
    output = hidden_states.new_zeros((batch * seqlen, *hidden_states.shape[1:]))
    output[indices] = hidden_states
    return rearrange(output, "(b s) ... -> b s ...", b=batch)


def all_gather(tensor: torch.Tensor, process_group) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank of ``process_group`` along the first axis."""
    world_size = dist.get_world_size(process_group)
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous(), group=process_group)
    return torch.cat(parts, dim=0)
