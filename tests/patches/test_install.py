"""The lazy OpenRLHF patcher: version refusal, patch-on-import, and patches inside Ray workers."""

import os
import subprocess
import sys

import pytest

from mm_eureka_plugin import patches
from mm_eureka_plugin.config import parse_plugin_section


def test_refuses_an_openrlhf_version_it_was_not_written_for(monkeypatch):
    monkeypatch.setattr(patches.importlib.metadata, "version", lambda name: "0.10.1")
    with pytest.raises(patches.OpenRLHFVersionError, match=r"written for openrlhf==0\.11\.2.*0\.10\.1"):
        patches.install()


def run_python(code):
    env = {**os.environ, "MM_EUREKA_DEVICE": "cpu"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_modules_are_patched_when_imported_after_install_and_at_install_when_before():
    out = run_python(
        "from mm_eureka_plugin.patches import install, is_patched\n"
        "from mm_eureka_plugin.patches.cpu import install_standins\n"
        "install_standins()\n"  # OpenRLHF imports flash_attn and vllm, absent on CPU
        "import openrlhf.trainer.ppo_utils.experience_maker as em\n"  # imported before install
        "print('before', is_patched(em))\n"
        "install()\n"
        "print('em', is_patched(em))\n"
        "import openrlhf.trainer.ray.ppo_actor as pa\n"  # imported after install
        "print('pa', is_patched(pa), hasattr(pa.ActorPPOTrainer.__init__, '__wrapped__'))\n"
    )
    assert "before False" in out
    assert "em True" in out
    assert "pa True True" in out


def test_the_ray_setup_hook_imports_neither_torch_nor_openrlhf():
    # It runs before Ray sets CUDA_VISIBLE_DEVICES: importing torch or deepspeed there would touch CUDA.
    out = run_python(
        "import sys\n"
        "from mm_eureka_plugin.patches import worker_setup_hook\n"
        "worker_setup_hook()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'openrlhf', 'deepspeed', 'vllm')))\n"
    )
    assert out.strip().splitlines()[-1] == "[]"


def test_runtime_env_carries_the_hook_config_and_openrlhfs_variables(monkeypatch):
    from mm_eureka_plugin.config import CONFIG_ENV
    from mm_eureka_plugin.patches.launch import SETUP_HOOK, runtime_env

    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    plugin = parse_plugin_section({"advantage_weight": "std"})
    env = runtime_env(plugin, cpu=False)
    assert env["worker_process_setup_hook"] == SETUP_HOOK == "mm_eureka_plugin.patches.worker_setup_hook"
    assert env["env_vars"][CONFIG_ENV] == plugin.to_json()
    assert env["env_vars"][patches.DEVICE_ENV] == "cuda"
    assert env["env_vars"]["NCCL_DEBUG"] == "INFO"  # a user's setting wins, as in OpenRLHF's train()
    assert env["env_vars"]["RAY_ENABLE_ZERO_COPY_TORCH_TENSORS"] == "1"


def test_an_openrlhf_actor_sees_the_patch_inside_its_ray_worker(monkeypatch):
    import ray

    from mm_eureka_plugin.config import CONFIG_ENV
    from mm_eureka_plugin.patches.launch import init_ray

    for key in (CONFIG_ENV, patches.DEVICE_ENV):  # init_ray sets them in this process: undo after
        monkeypatch.setenv(key, "")

    plugin = parse_plugin_section({"policy_loss": {"name": "cpgd", "drift_coef": 0.03}, "device": "cpu"})
    init_ray(plugin, cpu=True, num_cpus=2, include_dashboard=False)
    try:
        from openrlhf.trainer.ray.launcher import BaseDistributedActor

        actor = ray.remote(num_cpus=1)(BaseDistributedActor).remote(1, 0, "127.0.0.1", 29555)

        def inspect_worker(self):
            import openrlhf.trainer.ray.ppo_actor as ppo_actor

            from mm_eureka_plugin.config import PluginConfig
            from mm_eureka_plugin.patches import PostImportPatcher, is_patched

            return {
                "pid": os.getpid(),
                "actor_module": type(self).__module__,
                "finder": any(isinstance(f, PostImportPatcher) for f in sys.meta_path),
                "ppo_actor_patched": is_patched(ppo_actor),
                "loss": PluginConfig.from_env().build("policy_loss").drift_coef,
            }

        seen = ray.get(actor.__ray_call__.remote(inspect_worker), timeout=240)
    finally:
        ray.shutdown()
    assert seen["pid"] != os.getpid()
    assert seen["actor_module"] == "openrlhf.trainer.ray.launcher"
    assert seen["finder"] and seen["ppo_actor_patched"]
    assert seen["loss"] == 0.03


def test_cpu_patches_are_installed_only_for_a_cpu_run():
    code = (
        "import sys\n"
        "from mm_eureka_plugin.patches import install, is_patched\n"
        "install(cpu=sys.argv[1] == 'cpu')\n"
        "import torch\n"
        "print(is_patched(torch, 'cpu.torch_cuda'), torch.cuda.current_device.__module__)\n"
    )
    env = {**os.environ, "MM_EUREKA_DEVICE": ""}
    runs = {}
    for device in ("cpu", "cuda"):
        result = subprocess.run(
            [sys.executable, "-c", code, device], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs[device] = result.stdout.split()[-2:]
    assert runs["cpu"] == ["True", "mm_eureka_plugin.patches.cpu.torch_cuda"]
    assert runs["cuda"] == ["False", "torch.cuda"]
