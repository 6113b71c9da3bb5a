"""Deep hashing for remote-sensing retrieval: DMCH, DUWH, LSH/ITQ baselines, Hamming serving.

Modules: :mod:`ml.hashing.dmch` (supervised, ``../shared/papers/dmch-...txt``),
:mod:`ml.hashing.duwh` (unsupervised, ``../shared/papers/duwh-...txt``),
:mod:`ml.hashing.baselines`, :mod:`ml.hashing.serving`, :mod:`ml.hashing.train` (heads on
cached features), :mod:`ml.hashing.finetune` (backbone fine-tuned end to end).
"""
