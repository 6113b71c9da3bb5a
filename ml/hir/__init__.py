"""Hierarchical image retrieval (HIR): TKANet, ESFormer and the Eq. 1 re-ranking.

Paper: ``../shared/papers/hir-hierarchical-retrieval-tkanet-esformer.txt``.
"""
