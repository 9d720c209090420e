"""Near access-free generation (Vyas, Kakade & Barak 2023): models on disjoint shards, CP-Δ / CP-KL / CP-k
combinations, k-NAF bounds, and regurgitation of protected documents by duplication count."""
