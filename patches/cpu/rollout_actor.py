"""The ``transformers`` rollout engine of a CPU run (``plugin.rollout: transformers``).

:class:`CPURolloutActor` offers the interface OpenRLHF 0.11.2 uses on its ``RolloutRayActor``
(REFERENCE.md section 5, item 8) without vLLM: the same agent executor calls
:meth:`CPURolloutActor.generate` for each sample, and concurrent requests are batched into one
``generate`` of the HF model (images included). Weights arrive after every training step through
OpenRLHF's own ``broadcast_to_vllm`` over a
:class:`~mm_eureka_plugin.patches.cpu.weight_sync.GlooSyncGroup`, so the next step samples from
the updated policy. A request whose sampling params carry a ``seed`` (vLLM's per-request seed)
is sampled from its own generator (:func:`seeded_sampler`), whatever it is batched with.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from dataclasses import dataclass, field

import ray

from mm_eureka_plugin.patches.vlm_utils import share_group_inputs

logger = logging.getLogger(__name__)

MAX_BATCH = 64
"""Most sequences generated together in one ``generate`` call."""

COLLECT_SECONDS = 0.01
"""How long the batcher waits for more requests after the first one arrives."""


@dataclass
class Logprob:
    """vLLM's per-token log-probability record (only ``logprob`` is read by OpenRLHF)."""

    logprob: float


@dataclass
class CompletionOutput:
    """The fields of vLLM's ``CompletionOutput`` OpenRLHF's executors read."""

    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[dict[int, Logprob]] | None = None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]


@dataclass
class _Request:
    prompt_token_ids: list[int]
    sampling_params: object
    images: list
    future: asyncio.Future = field(repr=False)


def _sampling_key(params) -> tuple:
    bad_words = tuple(getattr(params, "bad_words", None) or ())
    logit_bias = tuple(sorted((getattr(params, "logit_bias", None) or {}).items()))
    stop_token_ids = tuple(getattr(params, "stop_token_ids", None) or ())
    return (
        params.temperature,
        params.top_p,
        params.top_k,
        params.max_tokens,
        params.min_tokens,
        params.logprobs,
        bool(getattr(params, "skip_special_tokens", True)),
        bad_words,
        logit_bias,
        stop_token_ids,
    )


def seeded_sampler(seeds: list[int | None], temperature: float, top_k: int | None, top_p: float | None):
    """A logits processor that draws each row's next token from its own ``torch.Generator``
    (seeded by ``seeds[row]``; the global one when None) after temperature, top-k and top-p, and
    leaves only that token possible, so ``generate``'s own sampling step picks it. ``generate``
    runs custom processors before its warpers: give it no temperature, top-k or top-p of its own."""
    import torch
    from transformers import LogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = [TemperatureLogitsWarper(temperature)]
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    generators = [None if seed is None else torch.Generator().manual_seed(seed) for seed in seeds]

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            for warper in warpers:
                scores = warper(input_ids, scores)
            probs = scores.float().softmax(-1)
            chosen = torch.full_like(scores, float("-inf"))
            for row, generator in enumerate(generators):
                chosen[row, torch.multinomial(probs[row], 1, generator=generator)] = 0.0
            return chosen

    return SeededSampler()


@ray.remote
class CPURolloutActor:
    """A rollout engine on CPU with the methods OpenRLHF calls on ``RolloutRayActor``."""

    def __init__(
        self,
        *args,
        bundle_indices: list | None = None,
        agent_func_path: str | None = None,
        remote_rm_url: str | None = None,
        mm_pad_token_ids: set | None = None,
        **kwargs,
    ) -> None:
        import torch
        from openrlhf.trainer.ray.vllm_engine import _load_agent_executor
        from openrlhf.utils.agent import SingleTurnAgentExecutor
        from transformers import AutoConfig

        from mm_eureka_plugin.checkpoints import load_model, load_processor, stop_token_ids

        if kwargs.get("tensor_parallel_size", 1) != 1:
            raise ValueError("the CPU rollout actor runs one engine per process: set vllm.tensor_parallel_size to 1.")
        # Ray warns on every returned sample that carries pixel tensors (OpenRLHF's mm_train_inputs).
        warnings.filterwarnings("ignore", message="Zero-copy tensor serialization is enabled")
        model_path = kwargs["model"]
        torch.manual_seed(kwargs.get("seed", 0))
        self.executor = (
            _load_agent_executor(agent_func_path) if agent_func_path else SingleTurnAgentExecutor(remote_rm_url)
        )
        config = AutoConfig.from_pretrained(model_path)
        self.model = load_model(model_path, torch.float32).eval()
        processor, self.tokenizer = load_processor(model_path)
        self.image_processor = getattr(processor, "image_processor", None)
        self.image_token_id = getattr(config, "image_token_id", None)
        self.video_token_id = getattr(config, "video_token_id", None)
        self.eos_token_ids = stop_token_ids(self.model.generation_config, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.eos_token_ids[0]
        self.parameters = dict(self.model.named_parameters())
        self.sync_group = None
        self.weight_version = 0
        self.model_lock = threading.Lock()
        self.pending: list[_Request] = []
        self.in_flight = 0
        self.batcher: asyncio.Task | None = None

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        """Generate one continuation; returns an object shaped like vLLM's ``RequestOutput``."""
        images = list((multi_modal_data or {}).get("image") or [])
        if (multi_modal_data or {}).get("video"):
            raise ValueError("the CPU rollout actor generates from images and text only, not video.")
        future = asyncio.get_running_loop().create_future()
        self.pending.append(_Request(list(prompt_token_ids), sampling_params, images, future))
        if self.batcher is None or self.batcher.done():
            self.batcher = asyncio.create_task(self._serve())
        return await future

    async def _serve(self) -> None:
        while self.pending:
            await asyncio.sleep(COLLECT_SECONDS)
            batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            groups: dict[tuple, list[_Request]] = {}
            for request in batch:
                groups.setdefault(_sampling_key(request.sampling_params), []).append(request)
            for requests in groups.values():
                self.in_flight += len(requests)
                try:
                    outputs = await asyncio.to_thread(self._generate_batch, requests)
                except Exception as exc:  # each waiting executor sees the error
                    for request in requests:
                        request.future.set_exception(exc)
                else:
                    for request, output in zip(requests, outputs, strict=True):
                        request.future.set_result(output)
                finally:
                    self.in_flight -= len(requests)

    def _generate_batch(self, requests: list[_Request]) -> list[RequestOutput]:
        import torch
        from transformers import GenerationConfig

        params = requests[0].sampling_params
        length = max(len(r.prompt_token_ids) for r in requests)
        input_ids = torch.full((len(requests), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, request in enumerate(requests):  # left padding, as for vLLM-free HF generation
            ids = request.prompt_token_ids
            input_ids[row, length - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, length - len(ids) :] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        images = [image for request in requests for image in request.images]
        if images:
            if self.image_processor is None:
                raise ValueError("a prompt has images but the rollout model has no image processor.")
            vision = self.image_processor(images=images, return_tensors="pt")
            inputs["pixel_values"] = vision["pixel_values"]
            inputs["image_grid_thw"] = vision["image_grid_thw"]
            token_types = (input_ids == self.image_token_id).to(torch.int32)
            if self.video_token_id is not None:
                token_types[input_ids == self.video_token_id] = 2
            inputs["mm_token_type_ids"] = token_types

        sample = params.temperature > 0
        top_k = params.top_k if sample and params.top_k and params.top_k > 0 else None
        seeds = [getattr(request.sampling_params, "seed", None) for request in requests]
        seeded = sample and any(seed is not None for seed in seeds)
        processors = [seeded_sampler(seeds, params.temperature, top_k, params.top_p)] if seeded else None
        own = sample and not seeded  # the seeded sampler applies temperature, top-k and top-p itself
        stops = [*self.eos_token_ids, *(getattr(params, "stop_token_ids", None) or ())]
        config = GenerationConfig(
            max_new_tokens=params.max_tokens,
            min_new_tokens=params.min_tokens or 0,
            do_sample=sample,
            temperature=params.temperature if own else None,
            top_p=params.top_p if own else None,
            top_k=top_k if own else None,
            eos_token_id=stops,
            pad_token_id=self.pad_token_id,
            suppress_tokens=self._token_ids(getattr(params, "bad_words", None)) or None,
            sequence_bias={(token,): bias for token, bias in (getattr(params, "logit_bias", None) or {}).items()}
            or None,
            return_dict_in_generate=True,
            output_logits=params.logprobs is not None,
        )
        with self.model_lock, torch.no_grad():
            generated = self.model.generate(**inputs, generation_config=config, logits_processor=processors)
        new_tokens = generated.sequences[:, length:].tolist()
        outputs = []
        for row, tokens in enumerate(new_tokens):
            stop = next((i for i, token in enumerate(tokens) if token in stops), None)
            tokens = tokens if stop is None else tokens[: stop + 1]
            logprobs = None
            if params.logprobs is not None:  # as OpenRLHF's Actor computes them: logits / temperature
                scale = params.temperature if sample else 1.0
                logprobs = [
                    {token: Logprob(torch.log_softmax(generated.logits[i][row].float() / scale, -1)[token].item())}
                    for i, token in enumerate(tokens)
                ]
            text = self.tokenizer.decode(tokens, skip_special_tokens=bool(getattr(params, "skip_special_tokens", True)))
            reason = "stop" if stop is not None else "length"
            outputs.append(RequestOutput([CompletionOutput(tokens, text, reason, logprobs)]))
        return outputs

    def _token_ids(self, words) -> list[int]:
        """The token ids of vLLM ``bad_words``; each must be one token of this vocabulary."""
        ids = []
        for word in words or ():
            encoded = self.tokenizer.encode(word, add_special_tokens=False)
            if len(encoded) != 1:
                raise ValueError(
                    f"bad word {word!r} is {len(encoded)} tokens; the CPU rollout actor bans single tokens only."
                )
            ids.append(encoded[0])
        return ids

    @share_group_inputs
    async def generate_responses(
        self, prompt, label, sampling_params, max_length, hf_tokenizer, num_samples=1, images=None
    ):
        """Generate ``num_samples`` samples for one prompt with the agent executor (as vLLM's actor does)."""
        return await asyncio.gather(
            *(
                self.executor.execute(
                    prompt=prompt,
                    label=label,
                    sampling_params=sampling_params,
                    max_length=max_length,
                    hf_tokenizer=hf_tokenizer,
                    llm_engine=self,
                    images=images,
                )
                for _ in range(num_samples)
            )
        )

    def get_num_unfinished_requests(self) -> int:
        return len(self.pending) + self.in_flight

    # -- weight sync --------------------------------------------------------------------------

    async def init_process_group(
        self, master_address, master_port, rank_offset, world_size, group_name, backend, use_ray
    ):
        """Join the trainer's weight-sync group as rank ``rank_offset``."""
        from mm_eureka_plugin.patches.cpu.weight_sync import GlooSyncGroup

        if use_ray:
            raise ValueError("vllm.sync_with_ray is not supported by the CPU rollout actor; leave it off.")
        self.sync_group = await asyncio.to_thread(GlooSyncGroup, master_address, master_port, rank_offset, world_size)

    async def update_weight(self, name, dtype, shape, empty_cache=False):
        """Receive parameter ``name`` from trainer rank 0; ``empty_cache`` marks the last one of a sync."""
        import torch

        tensor = torch.empty(shape, dtype=dtype)
        await asyncio.to_thread(self.sync_group.broadcast, tensor, 0)
        if name not in self.parameters:
            raise KeyError(f"the trainer sent weight {name!r}, which the rollout model does not have.")
        with self.model_lock:
            self.parameters[name].data.copy_(tensor)
        if empty_cache:
            self.weight_version += 1
            logger.info("rollout weights updated (version %d)", self.weight_version)

    async def update_weight_cuda_ipc(self, *args, **kwargs):
        raise ValueError("CUDA IPC weight sync needs a GPU: on CPU set vllm.sync_backend to gloo.")

    # -- engine lifecycle: nothing to do on CPU -----------------------------------------------

    async def reset_prefix_cache(self):
        pass

    async def sleep(self, level=1):
        pass

    async def wake_up(self, tags=None):
        pass

    async def pause_generation(self):
        pass

    async def resume_generation(self):
        pass
