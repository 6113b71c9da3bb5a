"""The packaged Lite0 checkpoint maps onto timm by position and classifies like ImageNet."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ml.features.backbone import (
    create_backbone,
    lite0_checkpoint_path,
    map_state_dict_by_position,
)

MILITARY_UNIFORM = 652  # ImageNet-1k class of the classic Grace Hopper test photo


def test_mapping_renames_by_position_and_checks_shapes() -> None:
    source = OrderedDict(a=torch.zeros(2, 3), b=torch.ones(4))
    target = OrderedDict(x=torch.empty(2, 3), y=torch.empty(4))
    mapped = map_state_dict_by_position(source, target)
    assert list(mapped) == ["x", "y"]
    assert mapped["y"] is source["b"]
    with pytest.raises(ValueError, match=r"tensor 1: checkpoint 'b' .* model 'y'"):
        map_state_dict_by_position(source, OrderedDict(x=torch.empty(2, 3), y=torch.empty(5)))
    with pytest.raises(ValueError, match="2 tensors, the model 1"):
        map_state_dict_by_position(source, OrderedDict(x=torch.empty(2, 3)))


def test_every_packaged_tensor_lands_in_the_model(backbone: nn.Module) -> None:
    source = torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    loaded = backbone.state_dict()
    assert len(source) == len(loaded) == 296
    for (src_key, src), (dst_key, dst) in zip(source.items(), loaded.items(), strict=True):
        assert torch.equal(src, dst), (src_key, dst_key)
    # spot-check the naming correspondence the positional mapping relies on
    keys = dict(zip(source, loaded, strict=True))
    assert keys["_conv_stem.weight"] == "conv_stem.weight"
    assert keys["_fc.weight"] == "classifier.weight"


def test_other_backbones_need_their_own_checkpoint() -> None:
    with pytest.raises(ValueError, match="checkpoint="):
        create_backbone("resnet18")


def test_known_photo_gets_its_imagenet_class(backbone: nn.Module) -> None:
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip(f"matplotlib's sample photo is not installed at {photo}")
    rgb = np.asarray(Image.open(photo).convert("RGB").resize((224, 224), Image.BILINEAR))
    x = torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    x = (x - 0.5) / 0.5  # backbone.pretrained_cfg: mean = std = 0.5
    with torch.inference_mode():
        probs = backbone(x).softmax(dim=1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[MILITARY_UNIFORM]) > 0.2
    assert tuple(backbone.pretrained_cfg["mean"]) == (0.5, 0.5, 0.5)


def test_random_weights_do_not_pass_the_photo_check() -> None:
    # Guards the test above: a model without the checkpoint must not find the class.
    import timm

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    with torch.inference_mode():
        probs = model(torch.zeros(1, 3, 64, 64)).softmax(dim=1)[0]
    assert float(probs.max()) < 0.2
