"""GCN and GATv2 over segment graphs, trained on each segment's mean fuzzy C-means membership.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.6. Both networks have
three layers; layer 3 maps the embedding to the C cluster logits and exists only for the loss,
categorical cross-entropy against the segment's averaged memberships t (a soft label):
L = -(1/n) sum_i sum_c t_ic log softmax(z_i)_c. The embedding used downstream (graph matching,
UMAP) is the output of layer 2 (section 3.5 finds it best):

* **GAT** (Brody et al., 2021, GATv2): h_i' = ||_{k=1..K} sigma(sum_{j in N_i} alpha_ij^k W^k h_j)
  with K = 8 heads of 8 features, so layers 1 and 2 give 64-d vectors (the embedding).
* **GCN**: 60 hidden features (Kipf and Welling propagation with self loops), 60-d embedding.

The node features are standardized with the training nodes' mean and deviation, stored in
the model as buffers so that inference needs nothing else.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.labelling.stopping import EarlyStopping, Training

GCN_HIDDEN = 60
GAT_HEADS = 8
GAT_HEAD_DIM = 8
KINDS = ("gcn", "gat")


class GraphNet(nn.Module):
    """Three graph layers; ``forward`` returns (logits (n, C), embedding (n, D)) of layer 2.

    Args:
        kind: ``gcn`` (60-d embedding) or ``gat`` (GATv2, 8 heads x 8 = 64-d).
        in_dim: node feature size F.
        n_classes: C.
    """

    mu: torch.Tensor
    sigma: torch.Tensor

    def __init__(self, kind: str, in_dim: int, n_classes: int) -> None:
        super().__init__()
        from torch_geometric.nn import GATv2Conv, GCNConv

        if kind not in KINDS:
            raise ValueError(f"GNN kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.in_dim = in_dim
        self.n_classes = n_classes
        self.register_buffer("mu", torch.zeros(in_dim))
        self.register_buffer("sigma", torch.ones(in_dim))
        if kind == "gcn":
            self.embedding_dim = GCN_HIDDEN
            self.conv1: nn.Module = GCNConv(in_dim, GCN_HIDDEN)
            self.conv2: nn.Module = GCNConv(GCN_HIDDEN, GCN_HIDDEN)
            self.conv3: nn.Module = GCNConv(GCN_HIDDEN, n_classes)
        else:
            self.embedding_dim = GAT_HEADS * GAT_HEAD_DIM
            self.conv1 = GATv2Conv(in_dim, GAT_HEAD_DIM, heads=GAT_HEADS)
            self.conv2 = GATv2Conv(self.embedding_dim, GAT_HEAD_DIM, heads=GAT_HEADS)
            self.conv3 = GATv2Conv(self.embedding_dim, n_classes, heads=1)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (n, C) and layer-2 embedding (n, D) of nodes ``x`` (n, F)."""
        x = (x - self.mu) / self.sigma
        act = F.relu if self.kind == "gcn" else F.elu
        h = act(self.conv1(x, edge_index))
        emb = act(self.conv2(h, edge_index))
        return self.conv3(emb, edge_index), emb


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy against soft targets: -(1/n) sum_i sum_c t_ic log p_ic."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


GraphArrays = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One graph as (x (n, F), edge_index (2, E), target (n, C))."""


def batch_graphs(graphs: Sequence[GraphArrays]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint union of graphs: stacked nodes, offset edges, stacked targets."""
    offsets = np.cumsum([0] + [len(g[0]) for g in graphs[:-1]])
    x = torch.as_tensor(np.concatenate([g[0] for g in graphs]), dtype=torch.float32)
    ei = torch.as_tensor(np.concatenate([g[1] + o for g, o in zip(graphs, offsets, strict=True)],
                                        axis=1), dtype=torch.long)
    t = torch.as_tensor(np.concatenate([g[2] for g in graphs]), dtype=torch.float32)
    return x, ei, t


@dataclass
class GNNTrainConfig:
    """GNN training settings.

    Attributes:
        kind: ``gcn`` or ``gat``.
        epochs: at most this many epochs.
        patience: stop after this many epochs without a lower validation loss.
        graphs_per_batch: graphs in one disjoint-union batch.
        lr: Adam learning rate.
        seed: seeds initialisation and batch order.
        device: ``cpu`` or ``cuda``.
    """

    kind: str = "gcn"
    epochs: int = 100
    patience: int = 15
    graphs_per_batch: int = 16
    lr: float = 5e-3
    seed: int = 0
    device: str = "cpu"


def train_gnn(
    graphs: Sequence[GraphArrays],
    val_graphs: Sequence[GraphArrays],
    config: GNNTrainConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Training[GraphNet]:
    """Train a GCN or GAT to predict each segment's mean membership (section 2.6).

    Raises:
        ValueError: no training or validation graph.
    """
    if not graphs or not val_graphs:
        raise ValueError("GNN training needs at least one training and one validation graph")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    feats = np.concatenate([g[0] for g in graphs])
    model = GraphNet(config.kind, feats.shape[1], graphs[0][2].shape[1])
    model.mu.copy_(torch.as_tensor(feats.mean(0)))
    model.sigma.copy_(torch.as_tensor(feats.std(0) + 1e-6))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    val = [t.to(device) for t in batch_graphs(val_graphs)]
    result = Training(model, device=config.device)
    stopper = EarlyStopping(config.patience)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(graphs), generator=gen).tolist()
        total, nodes = 0.0, 0
        for s in range(0, len(order), config.graphs_per_batch):
            x, ei, t = (a.to(device) for a in batch_graphs(
                [graphs[i] for i in order[s : s + config.graphs_per_batch]]))
            loss = soft_cross_entropy(model(x, ei)[0], t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
            nodes += len(x)
        model.eval()
        with torch.no_grad():
            val_loss = float(soft_cross_entropy(model(val[0], val[1])[0], val[2]))
        row = {"epoch": float(epoch), "train_loss": total / nodes, "val_loss": val_loss}
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if stopper.update(model, val_loss, epoch):
            break
    stopper.restore(model)
    result.val_loss, result.best_epoch = stopper.best_loss, stopper.best_epoch
    result.model = model.cpu().eval()
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def embed_graphs(
    model: GraphNet, graphs: Sequence[tuple[np.ndarray, np.ndarray]], graphs_per_batch: int = 64
) -> list[np.ndarray]:
    """Layer-2 node embeddings (n_i, D) float32 of each graph given as (x, edge_index)."""
    model = model.eval()
    out: list[np.ndarray] = []
    for s in range(0, len(graphs), graphs_per_batch):
        chunk = graphs[s : s + graphs_per_batch]
        fake = [(x, ei, np.zeros((len(x), 1), np.float32)) for x, ei in chunk]
        x, ei, _ = batch_graphs(fake)
        emb = model(x, ei)[1].numpy()
        bounds = np.cumsum([0] + [len(g[0]) for g in chunk])
        out.extend(emb[a:b] for a, b in itertools.pairwise(bounds))
    return out
