"""`mm-eureka eval --policy`: candidates sampled from a tiny policy, evaluated, resumed identically;
the sampling settings and the policy checked before anything runs."""

from __future__ import annotations

import json
import logging
import sys
import types

import pytest
from PIL import Image

from mm_eureka_plugin.checkpoints import vision_token_ids
from mm_eureka_plugin.cli import main
from mm_eureka_plugin.eval.generate import SEED_STRIDE, Policy, SamplingConfig, _Generator
from mm_eureka_plugin.eval.inputs import EvalError

N = 3
SAMPLING = ["--n", str(N), "--max-new-tokens", "6", "--batch-size", "2", "--seed", "7"]


@pytest.fixture
def benchmark(tmp_path):
    """A 3-problem `openrlhf`-format benchmark with small PNG images next to it."""
    rows = []
    for k, (colours, question, gold) in enumerate(
        [(["red"], "What is 1 + 2?", "3"), (["blue", "green"], "Which is left?", "A"), ([], "What is 2 + 2?", "4")]
    ):
        images = []
        for j, colour in enumerate(colours):
            Image.new("RGB", (56, 56), colour).save(tmp_path / f"{k}-{j}.png")
            images.append(f"{k}-{j}.png")
        prompt = "<image>" * len(colours) + question
        rows.append({"prompt": prompt, "images": images, "label": gold, "metadata": {"id": f"q{k}", "subject": "math"}})
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run(benchmark, policy, out, capsys, *extra):
    argv = ["eval", str(benchmark), "--policy", str(policy), "--out", str(out), *SAMPLING, *extra]
    assert main(argv) == 0, capsys.readouterr().err
    return (out / "candidates.jsonl").read_text()


def test_policy_candidates_are_generated_evaluated_and_resumed_identically(
    benchmark, tiny_vlm_dir, tmp_path, capsys, caplog
):
    from mm_eureka_plugin.checkpoints import load_processor

    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        first = run(benchmark, tiny_vlm_dir, out, capsys)
    assert "transformers backend" in caplog.text
    rows = [json.loads(line) for line in first.splitlines()]
    assert [row["id"] for row in rows] == ["q0", "q1", "q2"]
    assert all(len(row["responses"]) == N and all(isinstance(r, str) for r in row["responses"]) for row in rows)
    processor = load_processor(tiny_vlm_dir)[0]
    assert vision_token_ids(processor)  # the tiny policy has image pad and vision start/end tokens
    banned = [processor.tokenizer.convert_ids_to_tokens(i) for i in vision_token_ids(processor)]
    assert not [t for t in banned if any(t in r for row in rows for r in row["responses"])]
    assert any(r for row in rows for r in row["responses"])  # random weights still write something
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["overall"] == 3 and report["n_min"] == report["n_max"] == N
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    settings = json.loads((out / "eval.json").read_text())
    assert settings["policy"] == {
        "path": str(tiny_vlm_dir.resolve()),
        "n": N,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 6,
        "seed": 7,
        "backend": "transformers",  # auto, without CUDA
    }
    assert settings["candidates"] == str((out / "candidates.jsonl").resolve())

    # Killed after the first problem, mid-write of the second: the rerun regenerates the same samples.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    lines = first.splitlines(keepends=True)
    (resumed / "candidates.jsonl").write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    caplog.clear()
    assert run(benchmark, tiny_vlm_dir, resumed, capsys) == first
    assert "dropping a truncated last line" in caplog.text
    assert (resumed / "report.json").read_text() == (out / "report.json").read_text()

    # Other sampling settings in the same directory are refused before anything is generated.
    argv = ["eval", str(benchmark), "--policy", str(tiny_vlm_dir), "--out", str(out), *SAMPLING, "--temperature", "0.5"]
    assert main(argv) == 2
    assert "temperature" in capsys.readouterr().err
    assert (out / "candidates.jsonl").read_text() == first


def test_the_vision_special_tokens_are_suppressed_in_sampling(tiny_vlm_dir):
    sampling = SamplingConfig(backend="transformers", temperature=1.0, top_p=1.0, max_new_tokens=4, batch_size=2)
    generator = _Generator(tiny_vlm_dir, sampling)
    banned = generator.tokenizer.convert_ids_to_tokens(list(generator.config.suppress_tokens))
    assert {"<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"} <= set(banned)


def test_candidates_and_policy_together_or_neither_is_a_usage_error(benchmark, tmp_path, capsys):
    both = ["eval", str(benchmark), "--candidates", "c.jsonl", "--policy", str(tmp_path), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main(both)
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(benchmark), "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_bad_sampling_settings_are_refused_before_the_out_dir_is_made(benchmark, tiny_vlm_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", str(benchmark), "--policy", str(tiny_vlm_dir), "--out", str(out), "--n", "0"]
    assert main(argv) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    assert not out.exists()


class FakeLLM:
    """Stands in for vllm.LLM (no vLLM or GPU here): records the engine and every request."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.requests = kwargs, []
        FakeLLM.instances.append(self)

    def generate(self, requests, params, use_tqdm=True):
        self.requests.append((requests, params))
        texts = [f"<answer>{params.seed}-{i}</answer>" for i in range(params.n)]
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=t) for t in texts]) for _ in requests]


@pytest.fixture
def fake_vllm(monkeypatch):
    import torch

    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    FakeLLM.instances = []
    return FakeLLM


def test_fake_vllm_backend_gets_the_templated_prompt_images_and_sampling_settings(
    benchmark, tiny_vlm_dir, tmp_path, capsys, fake_vllm
):
    from mm_eureka_plugin.checkpoints import load_processor

    out = tmp_path / "out"
    rows = [json.loads(line) for line in run(benchmark, tiny_vlm_dir, out, capsys, "--temperature", "0.7").splitlines()]
    (llm,) = fake_vllm.instances  # auto chose vllm: it is importable and "CUDA" is available
    assert llm.kwargs == {
        "model": str(tiny_vlm_dir.resolve()),
        "limit_mm_per_prompt": {"image": 2},  # the most images of a problem
        "generation_config": "vllm",  # not the checkpoint's sampling defaults
    }
    processor = load_processor(tiny_vlm_dir)[0]
    for index, ((request,), params) in enumerate(llm.requests):
        assert request["prompt"].count("<|image_pad|>") == [1, 2, 0][index]  # chat template, one pad per image
        assert request["prompt"].endswith("<|im_start|>assistant\n")
        assert [im.size for im in request.get("multi_modal_data", {}).get("image", [])] == [(56, 56)] * [1, 2, 0][index]
        assert (params.n, params.seed, params.temperature, params.top_p, params.max_tokens) == (
            N,
            7 * SEED_STRIDE + index,
            0.7,
            1.0,
            6,
        )
        image_pad, im_end = processor.tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|im_end|>"])
        assert params.logit_bias[image_pad] == float("-inf") and im_end not in params.logit_bias
        assert processor.tokenizer.convert_tokens_to_ids("<|im_end|>") in params.stop_token_ids
    assert rows[1]["responses"] == [f"<answer>{7 * SEED_STRIDE + 1}-{i}</answer>" for i in range(N)]
    assert json.loads((out / "eval.json").read_text())["policy"]["backend"] == "vllm"

    # The same directory with the transformers backend would mix samples of two backends: refused.
    argv = ["eval", str(benchmark), "--policy", str(tiny_vlm_dir), "--out", str(out), *SAMPLING]
    assert main([*argv, "--temperature", "0.7", "--backend", "transformers"]) == 2
    assert "backend" in capsys.readouterr().err


def test_the_vllm_backend_without_cuda_is_refused_with_the_fix(benchmark, tiny_vlm_dir, tmp_path, capsys):
    argv = ["eval", str(benchmark), "--policy", str(tiny_vlm_dir), "--out", str(tmp_path / "o"), "--backend", "vllm"]
    assert main(argv) == 2
    assert "--backend vllm: " in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_new_tokens", 0, "--max-new-tokens must be at least 1, got 0."),
        ("temperature", -0.5, "--temperature must be at least 0 (0 is greedy), got -0.5."),
        ("top_p", 0.0, "--top-p must be in (0, 1], got 0.0."),
        ("top_p", 1.5, "--top-p must be in (0, 1], got 1.5."),
        ("batch_size", 0, "--batch-size must be at least 1, got 0."),
        ("backend", "tpu", "--backend must be one of auto, vllm, transformers, got 'tpu'."),
    ],
)
def test_each_bad_sampling_setting_is_refused_naming_its_flag(setting, value, message):
    with pytest.raises(EvalError) as exc:
        SamplingConfig(**{setting: value})
    assert str(exc.value) == message


def test_auto_sampling_is_resolved_to_the_backend_that_runs_here(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert SamplingConfig().backend == "transformers"
    with pytest.raises(EvalError, match=r"--backend vllm: .*\. Use --backend transformers \(or auto\)\."):
        SamplingConfig(backend="vllm")


def test_a_policy_needs_a_candidate_and_a_checkpoint_directory(tmp_path):
    sampling = SamplingConfig(backend="transformers")
    with pytest.raises(EvalError, match="^--n must be at least 1, got 0.$"):
        Policy(tmp_path, 0, sampling)
    with pytest.raises(EvalError, match="missing: no such policy checkpoint directory"):
        Policy(tmp_path / "missing", 1, sampling)
    policy = Policy(tmp_path, 2, sampling)
    assert policy.path == tmp_path.resolve()
    assert policy.to_json() == {
        "path": str(tmp_path.resolve()),
        "n": 2,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 1024,
        "seed": 0,
        "backend": "transformers",
    }
