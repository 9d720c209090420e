"""The LM family's sizes, per corpus and profile: widths and depths grow so the larger models can learn more.

The Dagster side picks the current profile's list (``resources.profiles.pick(**FAMILY_SIZES[corpus])``).
"""

from __future__ import annotations

from assets.lm.model import ModelSize

FAMILY_SIZES: dict[str, dict[str, list[ModelSize]]] = {
    "facts": {
        "tiny": [ModelSize(name="small", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=32),
                 ModelSize(name="large", d_model=64, n_layers=2, n_heads=4, d_ff=128, context_length=32)],
        "demo": [ModelSize(name="small", d_model=48, n_layers=1, n_heads=4, d_ff=144, context_length=64),
                 ModelSize(name="medium", d_model=96, n_layers=2, n_heads=4, d_ff=288, context_length=64),
                 ModelSize(name="large", d_model=160, n_layers=3, n_heads=4, d_ff=480, context_length=64)],
        "gpu": [ModelSize(name="small", d_model=256, n_layers=4, n_heads=4, d_ff=1024, context_length=256),
                ModelSize(name="medium", d_model=512, n_layers=8, n_heads=8, d_ff=2048, context_length=256),
                ModelSize(name="large", d_model=768, n_layers=12, n_heads=12, d_ff=3072, context_length=256)],
    },
    "code": {
        "tiny": [ModelSize(name="small", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=64),
                 ModelSize(name="large", d_model=64, n_layers=2, n_heads=4, d_ff=128, context_length=64)],
        "demo": [ModelSize(name="small", d_model=64, n_layers=2, n_heads=4, d_ff=192, context_length=128),
                 ModelSize(name="large", d_model=128, n_layers=3, n_heads=4, d_ff=384, context_length=128)],
        "gpu": [ModelSize(name="small", d_model=384, n_layers=6, n_heads=6, d_ff=1536, context_length=512),
                ModelSize(name="large", d_model=768, n_layers=12, n_heads=12, d_ff=3072, context_length=512)],
    },
}
