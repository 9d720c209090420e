"""Every study's Config defaults on the demo and gpu profiles: they construct, and the model shapes and
training configs built from them are valid. The gpu profile never runs in CI; this is what can be checked of
it without a GPU, so its first user does not meet a bad default at the first asset."""

import json
import subprocess
import sys

from tests.platform.test_definitions import REPO, _env

PROBE = r"""
import json
from types import SimpleNamespace
import pipelines.definitions  # noqa: F401 - imports every room, so every Config class exists
from resources.config import StudyConfig

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

cuda = SimpleNamespace(torch_device=lambda: "cuda", use_bf16=lambda: True, use_compile=lambda: True)
rows = []
for cls in sorted(set(subclasses(StudyConfig)), key=lambda c: (c.__module__, c.__name__)):
    row = {"config": f"{cls.__module__}.{cls.__name__}", "errors": [], "built": []}
    row["required"] = [n for n, f in cls.model_fields.items() if f.is_required()]
    if not row["required"]:  # a Config with required fields (a user's file, a sweep's grid) has no defaults to check
        try:
            config = cls()
            if hasattr(config, "model_size") and None not in (config.d_model, config.context_length):
                row["built"].append(str(config.model_size("probe")))
            if hasattr(config, "train_config"):
                row["built"].append(repr(config.train_config(cuda)))
        except Exception as exc:
            row["errors"].append(f"{type(exc).__name__}: {exc}")
    rows.append(row)
print("PROBE" + json.dumps(rows))
"""


def probe(profile: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=_env(REPROLAB_PROFILE=profile),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.split("PROBE", 1)[1])


def largest(rows: list[dict], field: str) -> int:
    return max(int(text.split(f"{field}=")[1].split(",")[0]) for r in rows for text in r["built"]
               if f"{field}=" in text)


def test_every_config_default_constructs_and_builds_valid_models_and_training():
    by_profile = {profile: probe(profile) for profile in ("demo", "gpu")}
    for profile, rows in by_profile.items():
        errors = {r["config"]: r["errors"] for r in rows if r["errors"]}
        assert not errors, (profile, errors)
        checked = [r for r in rows if not r["required"]]
        assert len(rows) >= 40 and len(checked) >= len(rows) - 5  # only a few Configs have required fields
        trainings = [text for r in rows for text in r["built"] if text.startswith("TrainConfig(")]
        assert len(trainings) >= 8  # the LM family, chat, alignment, robustness, ...
        assert all("device='cuda'" in text and "bf16=True" in text for text in trainings)
    # the gpu profile is the big one: wider models trained longer than on the demo
    assert largest(by_profile["gpu"], "d_model") > largest(by_profile["demo"], "d_model")
    assert largest(by_profile["gpu"], "max_steps") > largest(by_profile["demo"], "max_steps")
