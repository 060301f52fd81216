"""CPGD advantage weights against their definitions."""

import pytest
import torch

from mm_eureka_plugin.losses import ClipFilterLikeWeight, EqualWeight, StdWeight

REWARDS = torch.tensor(
    [
        [1.0, 0.0, 1.0, 0.0],  # informative
        [1.0, 1.0, 1.0, 1.0],  # all right
        [0.0, 0.0, 0.0, 0.0],  # all wrong
        [1.5, 0.0, 0.0, 0.5],  # informative
    ]
)


def test_equal_is_one_everywhere():
    assert torch.equal(EqualWeight()(REWARDS), torch.ones(4, 4))


def test_std_is_inverse_unbiased_group_std():
    weights = StdWeight(eps=1e-9)(REWARDS)
    std_row0 = (sum((x - 0.5) ** 2 for x in (1, 0, 1, 0)) / 3) ** 0.5
    assert weights[0].tolist() == pytest.approx([1 / std_row0] * 4)
    assert weights[1, 0].item() == pytest.approx(1e9)  # zero-std groups: centred reward is 0 anyway
    centred = REWARDS - REWARDS.mean(-1, keepdim=True)
    z = centred / (REWARDS.std(-1, keepdim=True) + 1e-9)
    assert torch.allclose(weights * centred, z)


def test_clip_filter_like_scales_informative_groups():
    weights = ClipFilterLikeWeight(max_weight=3.0)(REWARDS)
    # 4 groups, 2 informative: min(3, 4 / 2) = 2; zero-std groups keep 1.
    assert weights[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0]
    one_informative = REWARDS.clone()
    one_informative[3] = 0.0
    assert ClipFilterLikeWeight(max_weight=3.0)(one_informative)[0, 0].item() == 3.0  # 4 / 1 capped at 3
    assert torch.equal(ClipFilterLikeWeight()(torch.zeros(3, 4)), torch.ones(3, 4))


def test_weights_need_a_group_matrix():
    with pytest.raises(ValueError, match="n_samples"):
        StdWeight()(torch.ones(4))
