"""Where a run's GPUs go: OpenRLHF 0.11.2's placement of its model groups (``train_ppo_ray.train``)
and the plugin's PRM server, checked against a cluster before anything waits on it.

OpenRLHF asks Ray for whole-GPU bundles (``{"GPU": 1, "CPU": 1}``) in PACK placement groups and
waits on them with no timeout, so a layout the cluster cannot hold hangs. The groups, in the order
they are made (the PRM server first: the launcher starts it before OpenRLHF):

- the PRM server (``plugin.prm``): a plain actor with ``num_gpus`` (a fraction shares a GPU that no
  bundle holds);
- actor (+ reference with a KL, + vLLM with ``train.colocate_all``) in one group when colocated;
- vLLM: ``vllm.num_engines`` x ``vllm.tensor_parallel_size`` bundles, an engine's on one node;
- actor, reference (``algo.kl.init_coef`` > 0), critic, reward model (without a reward function or
  URL) on their own, ``num_nodes`` x ``num_gpus_per_node`` each (critic and reward model share with
  ``train.colocate_critic_reward``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from mm_eureka_plugin.config import PluginConfig
from mm_eureka_plugin.errors import UserError


class PlacementError(UserError):
    """The run's groups do not fit the cluster; the message names the group and the fix."""


@dataclass(frozen=True)
class Group:
    """One placement request: ``bundles`` whole GPUs in chunks of ``chunk`` that share a node (a
    vLLM engine's tensor-parallel ranks), or ``fraction`` of one GPU (the PRM server)."""

    name: str
    bundles: int = 0
    chunk: int = 1
    fraction: float = 0.0
    flags: str = ""

    @property
    def gpus(self) -> float:
        return self.bundles or self.fraction


def plan(args: argparse.Namespace, plugin: PluginConfig, cpu: bool) -> list[Group]:
    """The GPU requests of a run with the parsed OpenRLHF flags ``args``, in the order they are made."""
    flag = vars(args)

    def size(role: str) -> int:
        return flag[f"{role}.num_nodes"] * flag[f"{role}.num_gpus_per_node"]

    groups = []
    if plugin.prm is not None:
        gpus = plugin.prm.gpus(cpu)
        if gpus:
            groups.append(Group("PRM server", fraction=gpus, flags="plugin.prm.num_gpus"))
    kl = flag["algo.kl.init_coef"] > 0
    engines = (flag["vllm.num_engines"] or 0) * flag["vllm.tensor_parallel_size"]
    hybrid = flag["train.colocate_all"] and not flag["train.async_enable"]
    colocated = flag["train.colocate_actor_ref"] or flag["train.colocate_all"]
    if colocated:
        members = ["actor", *(["ref"] if kl else []), *(["vLLM"] if hybrid and engines else [])]
        groups.append(Group(" + ".join(members) + " (colocated)", size("actor"), flags="actor.num_gpus_per_node"))
    if engines and not hybrid:
        tp = flag["vllm.tensor_parallel_size"]
        groups.append(Group("vLLM engines", engines, chunk=tp, flags="vllm.num_engines"))
    if not colocated:
        groups.append(Group("actor", size("actor"), flags="actor.num_nodes"))
        if kl:
            groups.append(Group("ref", size("ref"), flags="ref.num_nodes"))
    if flag["critic.model_name_or_path"]:
        shared = flag["train.colocate_critic_reward"]
        groups.append(Group("critic + reward model" if shared else "critic", size("critic"), flags="critic.num_nodes"))
    if not (flag["reward.remote_url"] or flag["train.agent_func_path"]) and not (
        flag["critic.model_name_or_path"] and flag["train.colocate_critic_reward"]
    ):
        groups.append(Group("reward model", size("reward"), flags="reward.num_nodes"))
    return groups


def place(groups: list[Group], nodes: list[float]) -> list[list[float]]:
    """GPUs of each node each group takes, placing the groups in order on ``nodes`` (GPUs per
    node) as Ray would: a fraction on the node with the most unreserved GPU that holds it, whole
    bundles packed (the nodes the group already uses first, then the one with the most whole free
    GPUs), an engine's chunk on one node.
    Raises :class:`PlacementError` for the first group that does not fit."""
    if not nodes:
        raise PlacementError("the cluster has no alive node.")
    free = list(nodes)
    taken = []
    for group in groups:
        used = [0.0] * len(nodes)
        if group.fraction:
            fits = [i for i in range(len(nodes)) if free[i] + 1e-9 >= group.fraction]
            if not fits:
                raise PlacementError(_no_room(group, free, groups))
            node = max(fits, key=lambda i: free[i])
            used[node] = group.fraction
        else:
            for _ in range(group.bundles // group.chunk):
                # PACK: fill the nodes the group already uses, then the one with the most free GPUs
                room = [i for i in range(len(nodes)) if _whole(free[i] - used[i]) >= group.chunk]
                if not room:
                    raise PlacementError(_no_room(group, free, groups))
                node = max(room, key=lambda i: (used[i] > 0, _whole(free[i] - used[i])))
                used[node] += group.chunk
        free = [f - u for f, u in zip(free, used, strict=True)]
        taken.append(used)
    return taken


def _whole(gpus: float) -> int:
    return math.floor(gpus + 1e-9)


def _no_room(group: Group, free: list[float], groups: list[Group]) -> str:
    before = groups[: groups.index(group)]
    left = ", ".join(f"{f:g}" for f in free)
    need = f"{group.fraction:g} of a GPU" if group.fraction else f"{group.bundles} whole GPUs"
    if group.chunk > 1:
        need += f" in engines of {group.chunk} on one node"
    after = f"after {', '.join(g.name for g in before)}, the cluster has" if before else "the cluster has"
    change = " or ".join(dict.fromkeys([group.flags, *(g.flags for g in before)]))
    return (
        f"{group.name} needs {need}, but {after} {left} GPU(s) free per node: Ray would wait for it "
        f"forever. Change {change}, or add a node."
    )


def check_plan(groups: list[Group], nodes: list[float]) -> str:
    """The placement table of ``groups`` on ``nodes`` (GPUs per node); :class:`PlacementError` when
    a group cannot be placed, and when a vLLM engine's tensor-parallel size does not divide a
    node's GPUs (an engine would straddle nodes)."""
    for group in groups:
        if group.chunk > 1 and any(n and _whole(n) % group.chunk for n in nodes):
            raise PlacementError(
                f"{group.name}: tensor_parallel_size {group.chunk} does not divide the GPUs per node "
                f"({', '.join(f'{n:g}' for n in nodes)}): an engine would straddle nodes. Set "
                "vllm.tensor_parallel_size to a divisor of the GPUs per node."
            )
    taken = place(groups, nodes)
    header = "| group | GPUs | " + " | ".join(f"node {i}" for i in range(len(nodes))) + " |"
    rows = [header, "|" + "---|" * (len(nodes) + 2)]
    for group, used in zip(groups, taken, strict=True):
        rows.append(f"| {group.name} | {group.gpus:g} | " + " | ".join(f"{u:g}" for u in used) + " |")
    total = [sum(t[i] for t in taken) for i in range(len(nodes))]
    rows.append(
        f"| used / cluster | {sum(total):g} / {sum(nodes):g} | "
        + " | ".join(f"{t:g} / {n:g}" for t, n in zip(total, nodes, strict=True))
        + " |"
    )
    return "\n".join(rows)


def plan_table(groups: list[Group]) -> str:
    """The GPU requests of ``groups`` and their total, without a cluster to place them on."""
    rows = ["| group | GPUs |", "|---|---|", *(f"| {g.name} | {g.gpus:g} |" for g in groups)]
    rows.append(f"| total | {sum(g.gpus for g in groups):g} |")
    return "\n".join(rows)


def cluster_gpus() -> list[float]:
    """GPUs per alive node of the Ray cluster this process is connected to."""
    import ray

    return [node["Resources"].get("GPU", 0.0) for node in ray.nodes() if node.get("Alive")]


def parse_cluster(text: str) -> list[float]:
    """``NxG`` (N nodes of G GPUs) or ``G1,G2,...`` (GPUs of each node) as GPUs per node."""
    nodes, sep, gpus = text.partition("x")
    try:
        if sep:
            return [float(gpus)] * int(nodes)
        return [float(g) for g in text.split(",")]
    except ValueError:
        raise PlacementError(
            f"--cluster {text!r}: write NODESxGPUS (e.g. 6x8) or the GPUs of each node (8,8,4)."
        ) from None
