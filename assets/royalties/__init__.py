"""Copyright royalties by Shapley value (Wang, Deng, Chiba-Okabe, Barak, Su 2024).

The revenue of each generated piece is shared among the copyright owners whose data made the piece likely:
the value of a coalition S of owners for a piece x is log p_{base+S}(x) - log p_base(x), and each owner's
royalty share is its Shapley value over the sum of all owners' (negative values clipped at 0).
"""
