"""The models SampleHub serves, resolved from MLflow.

* :mod:`samplehub.models.tracking`: where the MLflow tracking store and its artifacts live;
* :mod:`samplehub.models.feature_model`: the scene model that encodes image features;
* :mod:`samplehub.models.hash_model`: the DMCH and DUWH hash models trained on those features.

The modules import torch; this package imports none of them itself.
"""
