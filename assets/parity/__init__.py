"""Sparse parities and hidden progress (Barak, Edelman, Goel, Kakade, Malach, Zhang 2022).

Online SGD on (n, k)-sparse parity: x uniform in {±1}^n, label the product of k secret coordinates, a fresh
batch every step. The science lives here (no Dagster): ``data`` (counter-based sign bits, labels),
``architectures`` (stacked weights, hand-written batched gradients), ``progress`` (hidden-progress measures),
``trainer`` (many networks at once), ``reference`` (one model at a time, autograd), ``sweep`` (the grid of
runs), ``analysis`` (t_c, the abruptness of the transition, hidden progress, the scaling fit), ``findings``
(verdicts against the paper) and ``plots``.
"""
