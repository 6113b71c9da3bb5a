"""Unsupervised labelling: fuzzy C-means targets, U-Net features, SLIC graphs, GCN/GAT.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt`` ("Leveraging Convolutional and
Graph Networks for an Unsupervised Remote Sensing Labelling Tool"). One model family per
module: :mod:`.fcm` (section 2.2), :mod:`.unet` (2.4), :mod:`.graphs` (2.5), :mod:`.gnn` (2.6),
:mod:`.matching` (2.7-2.8) and :mod:`.metrics` (2.9).
"""
