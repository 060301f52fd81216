"""OpenRLHF's real ActorPPOTrainer computes the plugin's CPGD loss, on the tiny VLM with images."""

import types

import pytest
import torch
from PIL import Image

from mm_eureka_plugin.losses import CPGDLoss


@pytest.fixture
def vlm_experience(tiny_vlm_dir):
    """Two samples (prompt with an image + 4 response tokens), as OpenRLHF's Experience."""
    from openrlhf.trainer.ppo_utils.experience import Experience

    from mm_eureka_plugin.checkpoints import load_processor

    processor = load_processor(tiny_vlm_dir)[0]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which colour?"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images = [Image.new("RGB", (56, 56), (200, 30, 30)), Image.new("RGB", (84, 56), (30, 30, 200))]
    response = processor.tokenizer.encode(" red blue green")[:3] + [
        processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ]
    rows, mm = [], []
    for image in images:
        inputs = processor(text=[text], images=[image], return_tensors="pt")
        rows.append(torch.cat([inputs["input_ids"][0], torch.tensor(response)]))
        mm.append({"pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]})
    width = max(len(r) for r in rows)
    pad = processor.tokenizer.pad_token_id
    sequences = torch.full((2, width), pad)
    attention = torch.zeros(2, width, dtype=torch.long)
    for i, row in enumerate(rows):  # left padding, as OpenRLHF's rollout does
        sequences[i, width - len(row) :] = row
        attention[i, width - len(row) :] = 1
    action_mask = torch.ones(2, len(response), dtype=torch.bool)
    action_mask[1, -1] = False
    return Experience(
        sequences=sequences,
        attention_mask=attention,
        action_mask=action_mask,
        advantages=torch.tensor([[1.0] * 4, [-0.5] * 4]),
        mm_train_inputs=mm,
        info={},
    )


def test_actor_ppo_trainer_computes_cpgd_with_images(
    tiny_vlm_dir, vlm_experience, plugin_env, openrlhf_args, monkeypatch
):
    from openrlhf.models import Actor
    from openrlhf.trainer.ray import ppo_actor

    from mm_eureka_plugin.patches.ppo_actor import PluginPolicyLoss

    plugin_env({"policy_loss": {"name": "cpgd", "clip_eps": 0.2, "drift_coef": 0.5, "drift_clip": 2.0}})
    args = openrlhf_args("--actor.freeze_visual_encoder", "--ds.attn_implementation", "sdpa")
    # The end-of-init barrier needs torch.distributed, and DeepSpeed's strategy a launched rank:
    # both are stood in here (a backward and a no-op optimizer step); the real ones run in
    # tests/patches/cpu/test_smoke_run.py. The replay buffer is real (patches/cpu puts it on CPU).
    monkeypatch.setattr(ppo_actor, "torch_dist_barrier_and_cuda_sync", lambda: None)
    strategy = types.SimpleNamespace(
        args=args,
        ring_attn_group=None,
        backward=lambda loss, model, optimizer: loss.backward(),
        optimizer_step=lambda *a, **k: None,
        get_grad_norm=lambda model: 0.0,
    )
    actor = Actor(str(tiny_vlm_dir), attn_implementation="sdpa", param_dtype="bf16", freeze_visual_encoder=True)
    optimizer = torch.optim.SGD([p for p in actor.parameters() if p.requires_grad], lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = ppo_actor.ActorPPOTrainer(strategy, actor, None, optimizer, scheduler, micro_train_batch_size=2)

    assert isinstance(trainer.actor_loss_fn, PluginPolicyLoss)
    assert isinstance(trainer.actor_loss_fn.loss_fn, CPGDLoss) and trainer.actor_loss_fn.loss_fn.drift_coef == 0.5

    exp = vlm_experience
    mm_inputs = {k: torch.cat([m[k] for m in exp.mm_train_inputs]) for k in ("pixel_values", "image_grid_thw")}
    with torch.no_grad():
        current = actor(exp.sequences, exp.action_mask, attention_mask=exp.attention_mask, **mm_inputs)
    # The rollout policy differs from the current one: some tokens are clipped, drift is positive.
    exp.action_log_probs = current - torch.tensor([[0.3, -0.1, 0.0, 0.05], [0.4, -0.3, 0.1, 0.0]])
    num_tokens = float(exp.action_mask.sum())
    loss_batch_info = {"dp_size": 1, "batch_num_tokens": num_tokens, "global_batch_size": 2.0}

    status = trainer.training_step(exp, kl_ctl=0.0, step=0, loss_batch_info=loss_batch_info)

    expected_loss, expected_metrics = CPGDLoss(0.2, 0.5, 2.0)(
        current, exp.action_log_probs, exp.advantages, exp.action_mask
    )
    metrics = status["metrics"]
    assert metrics["policy_loss"].item() == pytest.approx(expected_loss.item(), rel=1e-4, abs=1e-6)
    assert metrics["policy_drift"].item() == pytest.approx(expected_metrics["drift"].item(), rel=1e-4)
    assert metrics["policy_drift"].item() > 0
    assert metrics["ppo_clip_ratio"].item() == pytest.approx(expected_metrics["clip_frac"].item())
    assert 0 < metrics["ppo_clip_ratio"].item() < 1
    grads = [p.grad for p in actor.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    vision = [p for n, p in actor.model.named_parameters() if "visual" in n]
    assert vision and all(p.grad is None for p in vision)  # --actor.freeze_visual_encoder


def test_dp_size_and_global_token_count_normalise_like_openrlhf(plugin_env):
    from openrlhf.models.loss import aggregate_loss

    from mm_eureka_plugin.patches.ppo_actor import PluginPolicyLoss

    torch.manual_seed(0)
    log_probs, old = torch.randn(3, 5) * 0.1, torch.randn(3, 5) * 0.1
    adv, mask = torch.randn(3, 1), torch.rand(3, 5) > 0.3
    loss, *_ = PluginPolicyLoss(CPGDLoss(drift_coef=0.0))(log_probs, old, adv, mask, dp_size=4, batch_num_tokens=40.0)
    # With no drift, CPGD's per-token loss is -min(ln r * A, clip(ln r) * A); OpenRLHF's own
    # aggregate_loss over it, with the same dp_size and global token count, must agree.
    log_ratio = log_probs - old
    clipped = log_ratio.clamp(torch.log(torch.tensor(0.8)), torch.log(torch.tensor(1.2)))
    per_token = -torch.minimum(log_ratio * adv, clipped * adv)
    expected = aggregate_loss(per_token, mask, dp_size=4, batch_num_tokens=40.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx((per_token * mask).sum().item() / mask.sum().item(), rel=1e-3)


def test_sequence_mean_with_the_global_sequence_count_normalises_like_openrlhf_sample_mode(plugin_env):
    from openrlhf.models.loss import aggregate_loss

    from mm_eureka_plugin.losses import CappedPPOLoss
    from mm_eureka_plugin.patches.ppo_actor import PluginPolicyLoss

    torch.manual_seed(1)
    log_probs, old = torch.randn(3, 5) * 0.1, torch.randn(3, 5) * 0.1
    adv, mask = torch.randn(3, 1), torch.rand(3, 5) > 0.3
    mask[:, 0] = True
    loss_fn = CappedPPOLoss(ratio_cap=None, aggregation="seq_mean_token_mean")
    loss, *_ = PluginPolicyLoss(loss_fn)(
        log_probs, old, adv, mask, dp_size=2, batch_num_tokens=40.0, global_batch_size=6.0
    )
    ratio = (log_probs - old).exp()
    per_token = -torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
    expected = aggregate_loss(per_token, mask, token_level_loss=False, dp_size=2, global_batch_size=6.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx(
        aggregate_loss(per_token, mask, dp_size=2, batch_num_tokens=40.0).item(), rel=1e-3
    )


def test_without_a_plugin_loss_openrlhf_keeps_its_own(plugin_env, openrlhf_args, monkeypatch):
    from openrlhf.models import PolicyLoss
    from openrlhf.trainer.ray import ppo_actor

    plugin_env({})
    monkeypatch.setattr(ppo_actor, "torch_dist_barrier_and_cuda_sync", lambda: None)
    strategy = types.SimpleNamespace(args=openrlhf_args())
    trainer = ppo_actor.ActorPPOTrainer(strategy, None, None, None, None)
    assert type(trainer.actor_loss_fn) is PolicyLoss
