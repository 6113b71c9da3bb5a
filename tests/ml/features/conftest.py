"""Shared fixtures: the packaged EfficientNet-Lite0 and a small multi-scale encoder."""

from __future__ import annotations

import pytest
from torch import nn

from ml.features.backbone import create_backbone
from ml.features.multiscale import FusionHead, MultiScaleEncoder, StagePooling


@pytest.fixture(scope="session")
def backbone() -> nn.Module:
    return create_backbone()


@pytest.fixture(scope="session")
def encoder(backbone: nn.Module) -> MultiScaleEncoder:
    pooling = StagePooling(backbone)
    return MultiScaleEncoder(pooling, FusionHead(pooling.stage_channels, dim=128)).eval()
