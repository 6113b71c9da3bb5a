"""Visual features: backbone, multi-scale fusion, batched extraction, multi-label scene model.

Main paper, section 3.4.2 and Fig. 6 (``../shared/papers/sample-repository-label-semantics-
visual-retrieval.txt``).
"""

from ml.features.backbone import create_backbone, map_state_dict_by_position
from ml.features.extract import extract_features, resolve_precision
from ml.features.multiscale import (
    FusionHead,
    MultiScaleEncoder,
    StagePooling,
    build_multiscale_encoder,
)
from ml.features.runtime import OnnxEncoder, compile_encoder, resolve_runtime
from ml.features.scene_model import (
    SceneModel,
    SceneTrainConfig,
    load_scene_model,
    train_scene_model,
)

__all__ = [
    "FusionHead",
    "MultiScaleEncoder",
    "OnnxEncoder",
    "SceneModel",
    "SceneTrainConfig",
    "StagePooling",
    "build_multiscale_encoder",
    "compile_encoder",
    "create_backbone",
    "extract_features",
    "load_scene_model",
    "map_state_dict_by_position",
    "resolve_precision",
    "resolve_runtime",
    "train_scene_model",
]
