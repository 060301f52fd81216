"""The PRM server: one PRM, loaded once, scoring for every rollout actor of a training run.

``mm-eureka train`` starts :class:`PRMServer` as the named Ray actor :data:`PRM_ACTOR_NAME`
(on a GPU when ``plugin.prm.num_gpus`` asks for one, on CPU otherwise) before OpenRLHF starts
its actors; the ``prm`` reward in each rollout actor finds it by name. Requests that arrive
within ``max_wait_ms`` of each other are scored together, up to ``batch_size`` solutions per
forward pass, so many rollout actors scoring one sample each still fill the PRM's batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mm_eureka_plugin.prm.scorer import PRMInput, PRMScorer

PRM_ACTOR_NAME = "mm_eureka_prm"
"""The Ray actor name the ``prm`` reward looks up."""


@dataclass
class _Request:
    items: Sequence[PRMInput]
    future: asyncio.Future


class PRMServer:
    """Batches concurrent :meth:`score` calls into :class:`PRMScorer` forward passes.

    Run it as an async Ray actor (its methods are coroutines, so calls are served concurrently);
    the scorer runs in a thread, so requests keep queueing while a batch is in the model.
    """

    def __init__(
        self, path: str, *, device: str | None = None, batch_size: int = 16, max_wait_ms: float = 20.0
    ) -> None:
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be at least 0, got {max_wait_ms}.")
        self.scorer = PRMScorer(path, device=device, batch_size=batch_size)
        self.batch_size = batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Request] | None = None
        self._server: asyncio.Task | None = None
        self._counts = {"requests": 0, "solutions": 0, "batches": 0, "failed_batches": 0}

    async def score(self, items: Sequence[PRMInput]) -> list[list[float]]:
        """Every step's score for every item (see :meth:`PRMScorer.score`), batched with other calls."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._server = asyncio.get_running_loop().create_task(self._serve())
        request = _Request(list(items), asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        return await request.future

    def stats(self) -> dict[str, Any]:
        """Counts so far: requests, solutions, forward batches, and batches that failed; the device."""
        return {**self._counts, "device": str(self.scorer.device)}

    async def _serve(self) -> None:
        while True:
            batch = await self._collect()
            self._counts["requests"] += len(batch)
            self._counts["batches"] += 1
            try:
                scores = await asyncio.to_thread(self.scorer.score, [item for r in batch for item in r.items])
            except Exception:
                self._counts["failed_batches"] += 1
                await self._score_alone(batch)
                continue
            for request in batch:
                if not request.future.done():  # a caller's task may have been cancelled meanwhile
                    request.future.set_result(scores[: len(request.items)])
                scores = scores[len(request.items) :]

    async def _collect(self) -> list[_Request]:
        """The next request, and those arriving within ``max_wait`` while the batch has room."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        size = len(batch[0].items)
        deadline = loop.time() + self.max_wait
        while size < self.batch_size and (left := deadline - loop.time()) > 0:
            try:
                request = await asyncio.wait_for(self._queue.get(), left)
            except asyncio.TimeoutError:
                break
            batch.append(request)
            size += len(request.items)
        self._counts["solutions"] += size
        return batch

    async def _score_alone(self, batch: list[_Request]) -> None:
        """After a failed batch, each request on its own: one bad request fails only itself."""
        for request in batch:
            try:
                scores = await asyncio.to_thread(self.scorer.score, request.items)
            except Exception as exc:
                if not request.future.done():
                    request.future.set_exception(exc)
            else:
                if not request.future.done():
                    request.future.set_result(scores)


def start_prm_server(path: str, *, num_gpus: float, batch_size: int, max_wait_ms: float, cpu: bool) -> Any:
    """Start :class:`PRMServer` as the named Ray actor :data:`PRM_ACTOR_NAME`; returns its handle
    once the PRM is loaded (a load error raises here, before training starts)."""
    import ray

    device = "cuda" if num_gpus > 0 and not cpu else "cpu"
    actor = ray.remote(PRMServer).options(name=PRM_ACTOR_NAME, num_gpus=0 if cpu else num_gpus, num_cpus=1)
    handle = actor.remote(path, device=device, batch_size=batch_size, max_wait_ms=max_wait_ms)
    ray.get(handle.stats.remote())
    return handle
