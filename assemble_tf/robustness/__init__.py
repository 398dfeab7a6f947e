"""Robustness: ImageNet-C corruptions, ImageNet-P perturbations, mCE, mFR.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261
(reference code: github.com/hendrycks/robustness). Assemble-ResNet (Lee et
al. 2020, https://arxiv.org/abs/2001.06268) reports mCE and mFR on sets
regenerated at its evaluation resolution.
"""
