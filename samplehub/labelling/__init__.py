"""Unsupervised labelling: chip and segment embeddings, and the stored view a person labels.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``. :mod:`samplehub.labelling.view`
holds what the labelling page reads and writes (section 2.8).
"""
