"""Early stopping keeps the best epoch's weights and stops after ``patience`` worse epochs."""

import torch
from torch import nn

from ml.labelling.stopping import EarlyStopping


def test_keeps_the_best_epoch_and_stops_after_patience() -> None:
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    losses = [3.0, 1.0, 2.0, 1.5, 0.5]
    stopped_at = None
    for epoch, loss in enumerate(losses, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # the weights say which epoch they are from
        if stopper.update(model, loss, epoch):
            stopped_at = epoch
            break
    assert stopped_at == 4 and (stopper.best_epoch, stopper.best_loss) == (2, 1.0)
    stopper.restore(model)
    assert torch.all(model.weight == 2.0)


def test_restore_before_any_epoch_changes_nothing() -> None:
    model = nn.Linear(2, 1)
    before = model.weight.clone()
    EarlyStopping(patience=1).restore(model)
    assert torch.equal(model.weight, before)
