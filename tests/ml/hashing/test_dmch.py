"""DMCH: network shapes, Eq. 1 codes, BatchAll triplets, losses and Eq. 7 ranking."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from ml.hashing import dmch

if TYPE_CHECKING:
    from conftest import Clusters


def test_network_shapes_and_codes() -> None:
    model = dmch.DMCHNet(in_dim=20, n_bits=32, n_classes=4)
    u, logits = model(torch.randn(6, 20))
    assert u.shape == (6, 32) and logits.shape == (6, 4)
    assert torch.all((u > 0) & (u < 1))
    codes = dmch.binarize(u)
    assert codes.shape == (6, 32) and set(np.unique(codes)) <= {0, 1}


def test_binarize_eq1_threshold() -> None:
    assert dmch.binarize(np.array([[0.2, 0.5, 0.51]])).tolist() == [[0, 0, 1]]


def _brute_force_positive_triplets(u: torch.Tensor, y: torch.Tensor, m: float) -> set:
    found = set()
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a != p and y[a] == y[p] and y[a] != y[n]:
            loss = ((u[a] - u[p]) ** 2).sum() - ((u[a] - u[n]) ** 2).sum() + m
            if loss > 0:
                found.add((a, p, n))
    return found


def test_batch_all_selects_exactly_the_positive_loss_triplets() -> None:
    torch.manual_seed(0)
    u = torch.rand(9, 4)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    triplets = dmch.batch_all_triplets(u, y, margin=0.2)
    got = {tuple(t) for t in triplets.tolist()}
    assert got == _brute_force_positive_triplets(u, y, 0.2)
    assert 0 < len(got) < 9 * 2 * 6
    losses = dmch.triplet_losses(u, y, 0.2)
    assert torch.all(losses[tuple(triplets.T)] > 0)


def test_valid_triplet_count_matches_paper_formula() -> None:
    # P x K x (K - 1) x (PK - K) valid triplets for P = 3, K = 4
    y = torch.repeat_interleave(torch.arange(3), 4)
    losses = dmch.triplet_losses(torch.zeros(12, 2), y, margin=0.2)
    assert int(torch.isfinite(losses).sum()) == 3 * 4 * 3 * 8


def test_random_triplets_ablation_are_valid() -> None:
    y = torch.tensor([0, 0, 1, 1, 2])
    t = dmch.random_triplets(y, torch.Generator().manual_seed(0))
    assert len(t) == 4  # the lone class-2 sample has no positive
    for a, p, n in t.tolist():
        assert a != p and y[a] == y[p] and y[a] != y[n]


def test_pk_sampler_batches() -> None:
    labels = np.repeat(np.arange(5), 10)
    sampler = dmch.PKSampler(labels, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50 // 12
    for idx in batches:
        classes, counts = np.unique(labels[idx], return_counts=True)
        assert len(classes) == 3 and set(counts) == {4}
    with pytest.raises(ValueError, match="p must be"):
        dmch.PKSampler(labels, p=9, k=4)


def test_loss_terms_and_switches() -> None:
    torch.manual_seed(0)
    model = dmch.DMCHNet(8, 16, 3)
    x, y = torch.randn(12, 8), torch.repeat_interleave(torch.arange(3), 4)
    u, logits = model(x)
    cfg = dmch.DMCHLossConfig()
    triplets = dmch.select_triplets(u, y, cfg, None)
    total, parts = dmch.dmch_loss(u, logits, y, cfg, triplets)
    assert set(parts) == {"tri", "cat", "push", "bal"}
    assert parts["push"] <= 0
    assert float(total.detach()) == pytest.approx(sum(parts.values()), rel=1e-5)
    no_cat = dmch.DMCHLossConfig(use_cat=False, use_bal=False)
    _, parts = dmch.dmch_loss(u, logits, y, no_cat, triplets)
    assert set(parts) == {"tri", "push"}
    with pytest.raises(ValueError, match="use_"):
        off = dmch.DMCHLossConfig(use_tri=False, use_cat=False, use_push=False, use_bal=False)
        dmch.dmch_loss(u, logits, y, off, triplets)


def test_loss_falls_on_clustered_data(clusters: Clusters) -> None:
    x, y = clusters
    torch.manual_seed(0)
    model = dmch.DMCHNet(x.shape[1], 16, 5)
    opt = dmch.make_optimizer(model, lr=1e-3)
    cfg = dmch.DMCHLossConfig()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    sampler = dmch.PKSampler(y, p=3, k=8, seed=0)
    losses = []
    for _ in range(8):
        for idx in sampler:
            u, logits = model(xt[idx])
            triplets = dmch.select_triplets(u, yt[idx], cfg, None)
            loss, _ = dmch.dmch_loss(u, logits, yt[idx], cfg, triplets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_hamming_distances_brute_force() -> None:
    rng = np.random.default_rng(0)
    q, b = rng.integers(0, 2, (3, 16)), rng.integers(0, 2, (5, 16))
    expected = (q[:, None, :] != b[None, :, :]).sum(axis=2)
    assert np.array_equal(dmch.hamming_distances(q, b), expected)


def test_eq7_orders_ties_by_pre_quantization_values() -> None:
    codes_q = np.array([[1, 0, 1, 0]])
    u_q = np.array([[0.9, 0.1, 0.8, 0.2]])
    codes_b = np.array([[1, 0, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1]])
    u_b = np.array(
        [[0.9, 0.1, 0.8, 0.6], [0.6, 0.4, 0.6, 0.4], [0.9, 0.1, 0.7, 0.2], [0.1, 0.9, 0.1, 0.9]]
    )
    D, I = dmch.coarse_to_fine_rank(codes_q, u_q, codes_b, u_b, top_m=3)
    # items 1 and 2 tie at Hamming 0; item 2 is closer in u; item 0 has Hamming 1
    assert I.tolist() == [[2, 1, 0]]
    # Eq. 7 by hand: item 2 gap 0.1 over 4 agreeing bits; item 0: 1 + 0 / 3
    assert D[0].tolist() == pytest.approx([0.1 / 4, (0.3 + 0.3 + 0.2 + 0.2) / 4, 1.0])
    assert np.all(D[0] < 1 + dmch.hamming_distances(codes_q, codes_b[I[0]])[0])
