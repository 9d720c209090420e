"""Watermarks in the Sand (Zhang et al. 2023): KGW, Unigram and Kuditipudi EXP / EXP-edit watermarks, their
detectors, and the random-walk attack that removes them with quality-preserving perturbations."""
