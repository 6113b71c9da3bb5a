import numpy as np
import pytest
import torch

from ml.labelling.gnn import GNNTrainConfig, GraphNet, embed_graphs, soft_cross_entropy, train_gnn
from ml.labelling.graphs import knn_edges


def toy_graphs(n_graphs: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_graphs):
        cents = rng.uniform(0, 10, size=(25, 2))
        x = rng.normal(size=(25, 6)).astype(np.float32)
        logits = 2 * x[:, :3]
        t = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        out.append((x, knn_edges(cents, 4), t.astype(np.float32)))
    return out


@pytest.mark.parametrize(("kind", "dim"), [("gcn", 60), ("gat", 64)])
def test_embedding_is_layer_two_and_training_lowers_the_loss(kind: str, dim: int) -> None:
    graphs = toy_graphs(6, 0)
    result = train_gnn(graphs[:4], graphs[4:], GNNTrainConfig(kind=kind, epochs=12, patience=50,
                                                             graphs_per_batch=4, lr=1e-2))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.02
    emb = embed_graphs(result.model, [(g[0], g[1]) for g in graphs[4:]])
    assert [e.shape for e in emb] == [(25, dim), (25, dim)]
    x, ei = (torch.as_tensor(graphs[4][0]), torch.as_tensor(graphs[4][1]))
    np.testing.assert_allclose(emb[0], result.model(x, ei)[1].detach().numpy(), rtol=1e-5)


def test_soft_cross_entropy_is_smallest_at_the_target() -> None:
    t = torch.tensor([[0.7, 0.2, 0.1]])
    assert soft_cross_entropy(t.log(), t) < soft_cross_entropy(t.flip(-1).log(), t)
    with pytest.raises(ValueError, match="kind"):
        GraphNet("sage", 3, 2)
