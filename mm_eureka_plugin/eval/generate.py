"""Candidates for ``mm-eureka eval --policy``: n sampled responses per benchmark problem, resumable.

:func:`generate_candidates` writes the ``candidates.jsonl`` that
:func:`~mm_eureka_plugin.eval.inputs.read_candidates` reads, one ``{"id", "responses"}`` line
per problem, appended and flushed as each problem finishes (a :mod:`~mm_eureka_plugin.runfiles`
run file). A rerun skips the ids already in the file (a truncated last line is dropped with a
warning, and its problem generated again). The generators also write the rollouts of
``mm-eureka prm annotate``.

Backends (:data:`BACKENDS`), one problem at a time, with the same sampling settings: ``vllm``
(``vllm.LLM``, a problem's n samples in one request; ``auto`` picks it where vLLM is installed and
CUDA is available) and ``transformers`` (``generate``, CUDA in bfloat16 when available, else CPU in
float32). Neither applies the checkpoint's own sampling defaults (e.g. Qwen's top_k and
repetition penalty): only the settings of :class:`SamplingConfig`.

Each problem's sampling is seeded from ``(seed, problem index)``, so a resumed run writes the same
samples as an uninterrupted one (with the same backend). Per problem: the processor's chat template
over the record's messages (generation prompt added), its images on MM-Eureka's pixel budget (as
training, rollout and the evaluation's judging see them), and the vision special tokens banned,
as in rollouts.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mm_eureka_plugin.checkpoints import (
    load_model,
    load_processor,
    model_inputs,
    stop_token_ids,
    vision_logit_bias,
    vision_token_ids,
)
from mm_eureka_plugin.data.convert import load_record_images
from mm_eureka_plugin.data.images import ImageError
from mm_eureka_plugin.data.records import PromptRecord
from mm_eureka_plugin.eval.inputs import EvalError, check_candidates_row
from mm_eureka_plugin.runfiles import appending, read_done

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "transformers")
"""``auto``: vllm where it is installed and CUDA is available, else transformers."""
SEED_STRIDE = 1_000_003
"""A problem's seed is ``seed * SEED_STRIDE + index``: distinct per (seed, index) for indexes below it."""


@dataclass(frozen=True)
class SamplingConfig:
    """How a policy samples: the ``--backend``, ``--temperature``, ``--top-p``, ``--max-new-tokens``,
    ``--seed`` and ``--batch-size`` flags, checked on construction.

    ``backend`` is one of :data:`BACKENDS`; ``auto`` is replaced by the backend that runs here
    (:func:`choose_backend`), so the config says which one sampled. ``temperature`` 0 is greedy
    decoding. ``seed`` seeds a problem's sampling from ``(seed, problem index)``. ``batch_size`` is
    the most sequences in one transformers ``generate`` call. Raises :class:`EvalError` naming the
    flag of a value out of range, or a backend that cannot run here.
    """

    backend: str = "auto"
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise EvalError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise EvalError(f"--temperature must be at least 0 (0 is greedy), got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise EvalError(f"--top-p must be in (0, 1], got {self.top_p}.")
        if self.batch_size < 1:
            raise EvalError(f"--batch-size must be at least 1, got {self.batch_size}.")
        object.__setattr__(self, "backend", choose_backend(self.backend))


@dataclass(frozen=True)
class Policy:
    """The policy checkpoint that samples an evaluation's candidates: ``n`` per problem, with ``sampling``.

    ``path`` is made absolute. Raises :class:`EvalError` for ``n`` below 1 (``--n``) and a ``path``
    that is not a directory.
    """

    path: Path
    n: int
    sampling: SamplingConfig

    def __post_init__(self) -> None:
        if self.n < 1:
            raise EvalError(f"--n must be at least 1, got {self.n}.")
        if not Path(self.path).is_dir():
            raise EvalError(f"{self.path}: no such policy checkpoint directory.")
        object.__setattr__(self, "path", Path(self.path).resolve())

    def to_json(self) -> dict[str, Any]:
        """The settings that decide the samples: path, n, and every sampling setting but the batch size."""
        s = self.sampling
        return {
            "path": str(self.path),
            "n": self.n,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_new_tokens": s.max_new_tokens,
            "seed": s.seed,
            "backend": s.backend,
        }


def choose_backend(backend: str) -> str:
    """The backend to use for ``backend`` (one of :data:`BACKENDS`); ``EvalError`` if it cannot run here."""
    import torch

    if backend not in BACKENDS:
        raise EvalError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    try:
        has_vllm = importlib.util.find_spec("vllm") is not None
    except ValueError:  # a module put in sys.modules without a spec
        has_vllm = sys.modules.get("vllm") is not None
    if backend == "auto":
        return "vllm" if has_vllm and torch.cuda.is_available() else "transformers"
    if backend == "vllm" and not (has_vllm and torch.cuda.is_available()):
        missing = "vLLM is not installed (pip install '.[gpu]')" if not has_vllm else "CUDA is not available"
        raise EvalError(f"--backend vllm: {missing}. Use --backend transformers (or auto).")
    return backend


def generate_candidates(records: dict[str, PromptRecord], policy: Policy, out: Path, *, progress: bool = False) -> Path:
    """Append ``policy.n`` responses of the policy for every problem of ``records`` (id -> record,
    in benchmark order) not yet in ``out``; returns ``out`` (see the module docstring).

    Raises ``EvalError`` naming the benchmark row for an image that cannot be loaded, or the line
    of ``out`` that is not a candidates row (``RunFileError`` for a broken line before the last).
    """
    out = Path(out)
    done = {check_candidates_row(row, where)[0] for where, row in read_done(out, "generated")}
    todo = [(index, pid) for index, pid in enumerate(records) if pid not in done]
    if not todo:
        return out
    max_images = max(len(records[pid].images) for _, pid in todo)
    generator = make_generator(policy.path, policy.sampling, max_images)
    bar = tqdm(
        total=len(records),
        initial=len(records) - len(todo),
        desc="Generating candidates",
        unit="problem",
        file=sys.stderr,
        disable=not progress,
    )
    with appending(out) as append, bar:
        for index, pid in todo:
            responses = generator.generate(records[pid], policy.n, policy.sampling.seed * SEED_STRIDE + index)
            append({"id": pid, "responses": responses})
            bar.update()
    return out


def make_generator(policy: str | Path, sampling: SamplingConfig, max_images: int) -> Generator:
    """The generator of ``sampling.backend`` for the checkpoint ``policy``; ``max_images`` is the
    most images of one prompt (vLLM reserves them)."""
    logger.info("generating with the %s backend", sampling.backend)
    if sampling.backend == "vllm":
        return _VLLMGenerator(policy, sampling, max_images)
    return _Generator(policy, sampling)


def prompt_and_images(processor, record: PromptRecord) -> tuple[str, list[Any]]:
    """A record's chat-templated prompt (generation prompt added) and its images on the pixel budget;
    ``EvalError`` naming the row for an image that cannot be loaded."""
    try:
        images = load_record_images(record)
    except ImageError as exc:
        raise EvalError(f"benchmark row {record.row}: {exc}") from None
    return processor.apply_chat_template(record.messages, add_generation_prompt=True, tokenize=False), images


class Generator:
    """A policy checkpoint and its processor, sampling continuations of a prompt text."""

    processor: Any

    def generate(self, record: PromptRecord, n: int, seed: int) -> list[str]:
        """``n`` responses to ``record`` (chat template and images as in the module docstring)."""
        prompt, images = prompt_and_images(self.processor, record)
        return self.complete(prompt, images, n, seed)

    def complete(self, prompt: str, images: list[Any], n: int, seed: int) -> list[str]:
        """``n`` continuations of the text ``prompt`` (chat template applied, one placeholder per
        image), sampling seeded by ``seed``; each decoded up to its stop token, special tokens skipped."""
        raise NotImplementedError


class _VLLMGenerator(Generator):
    """A policy checkpoint in vLLM: a prompt's n samples in one request."""

    def __init__(self, policy: str | Path, sampling: SamplingConfig, max_images: int):
        from transformers import GenerationConfig
        from vllm import LLM

        self.processor, tokenizer = load_processor(policy)
        try:
            generation_config = GenerationConfig.from_pretrained(str(policy))
        except OSError:  # no generation_config.json: the tokenizer's eos alone
            generation_config = None
        self.sampling = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            "stop_token_ids": stop_token_ids(generation_config, tokenizer),
            "logit_bias": vision_logit_bias(self.processor),
        }
        # generation_config="vllm": vLLM's own defaults, not the checkpoint's sampling settings.
        self.llm = LLM(model=str(policy), limit_mm_per_prompt={"image": max_images}, generation_config="vllm")

    def complete(self, prompt: str, images: list[Any], n: int, seed: int) -> list[str]:
        from vllm import SamplingParams

        request = {"prompt": prompt, "multi_modal_data": {"image": images}} if images else {"prompt": prompt}
        (output,) = self.llm.generate([request], SamplingParams(n=n, seed=seed, **self.sampling), use_tqdm=False)
        return [completion.text for completion in output.outputs]


class _Generator(Generator):
    """A policy checkpoint with transformers ``generate``, ``sampling.batch_size`` sequences per call."""

    def __init__(self, policy: str | Path, sampling: SamplingConfig):
        import torch
        from transformers import GenerationConfig

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.processor, self.tokenizer = load_processor(policy)
        self.tokenizer.padding_side = "left"
        self.model = load_model(str(policy), dtype).to(self.device).eval()
        self.eos_token_ids = eos = stop_token_ids(self.model.generation_config, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        sample = sampling.temperature > 0
        # Every sampling value set explicitly: transformers fills unset ones from the checkpoint's
        # generation_config (e.g. Qwen's top_k=1, repetition_penalty=1.05), which vLLM would not apply.
        self.config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            temperature=sampling.temperature if sample else 1.0,
            top_p=sampling.top_p if sample else 1.0,
            top_k=0,
            repetition_penalty=1.0,
            eos_token_id=eos,
            pad_token_id=pad if pad is not None else eos[0],
            suppress_tokens=vision_token_ids(self.processor) or None,
        )
        self.batch_size = sampling.batch_size

    def complete(self, prompt: str, images: list[Any], n: int, seed: int) -> list[str]:
        import torch

        torch.manual_seed(seed)
        responses: list[str] = []
        while len(responses) < n:
            k = min(self.batch_size, n - len(responses))
            responses.extend(self._generate(prompt, images, k))
        return responses

    def _generate(self, prompt: str, images: list[Any], k: int) -> list[str]:
        """``k`` samples of one prompt (repeated ``k`` times, so the processor lays out every input)."""
        import torch

        inputs = model_inputs(self.processor, self.model, [prompt] * k, images * k, self.device)
        with torch.no_grad():
            sequences = self.model.generate(**inputs, generation_config=self.config)
        texts = []
        for tokens in sequences[:, inputs["input_ids"].shape[1] :].tolist():
            stop = next((i for i, token in enumerate(tokens) if token in self.eos_token_ids), None)
            texts.append(self.tokenizer.decode(tokens if stop is None else tokens[:stop], skip_special_tokens=True))
        return texts
