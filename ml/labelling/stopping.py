"""Early stopping on a validation loss, shared by the U-Net and GNN training loops.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.4 ("early
stopping" against over-fitting); the GNNs of section 2.6 train the same way here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


@dataclass
class Training(Generic[M]):
    """A trained network (best validation epoch, on the CPU) and its history.

    Attributes:
        model: the network.
        history: one row per epoch (``epoch``, ``train_loss``, ``val_loss``).
        best_epoch: the epoch whose weights the model holds.
        val_loss: its validation loss.
        seconds: wall-clock training time.
        device: where it trained.
    """

    model: M
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    val_loss: float = math.inf
    seconds: float = 0.0
    device: str = "cpu"


@dataclass
class EarlyStopping:
    """The best validation epoch's weights, and whether ``patience`` epochs passed without one.

    Attributes:
        patience: epochs without a lower validation loss before training stops.
        best_loss: the lowest validation loss so far.
        best_epoch: its epoch (0 before any).
        stale: epochs since it.
        state: a copy of the model's weights at that epoch.
    """

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    stale: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, model: nn.Module, loss: float, epoch: int) -> bool:
        """Record ``epoch``'s validation ``loss``; True when training should stop."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.stale = loss, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights back into ``model`` (no-op before any epoch)."""
        if self.state is not None:
            model.load_state_dict(self.state)
