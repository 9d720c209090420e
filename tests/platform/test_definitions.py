"""The code location: loads without torch, validates with the dagster CLI, rejects unknown profiles."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env(**extra):
    env = {**os.environ, **extra}
    env.pop("DAGSTER_HOME", None)
    return env


def test_definitions_load_without_torch_or_transformers():
    code = (
        "import sys; from pipelines.definitions import defs; "
        "assert defs.resolve_job_def('main') is not None; "
        "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'great_expectations') if m in sys.modules]; "
        "print('heavy:', heavy); assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def test_dagster_definitions_validate():
    """Through the workspace `make ui` uses: the code location is named reprolab."""
    out = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", "dagster_home/workspace.yaml"],
                         cwd=REPO, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "code location reprolab" in out.stdout + out.stderr


def test_unknown_profile_fails_at_load_with_valid_names():
    out = subprocess.run([sys.executable, "-c", "import pipelines.definitions"], cwd=REPO,
                         env=_env(REPROLAB_PROFILE="huge"), capture_output=True, text=True)
    assert out.returncode != 0
    assert "REPROLAB_PROFILE='huge'" in out.stderr and "tiny, demo, gpu" in out.stderr


def test_instance_yaml_is_valid(tmp_path):
    import shutil

    import dagster as dg

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert instance.run_monitoring_enabled
            assert not instance.run_retries_enabled
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        os.environ.pop("DAGSTER_HOME", None)
    assert (home / "storage").is_dir() or (home / "history").is_dir()


def test_every_asset_has_a_stage_and_findings_are_re_evaluated_nightly():
    """The schedules select on stage tags: an untagged asset would silently drop out of both."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.jobs import EVALUATION, MAIN_SELECTION, TRAINING

    graph = defs.resolve_asset_graph()
    data = dg.AssetSelection.tag("reprolab/stage", "data").resolve(graph)
    evaluation, training = EVALUATION.resolve(graph), TRAINING.resolve(graph)
    everything = MAIN_SELECTION.resolve(graph)
    untagged = sorted(k.to_user_string() for k in everything - evaluation - training - data)
    assert not untagged, f"assets without a reprolab/stage tag: {untagged}"
    assert not (evaluation & training) and not (evaluation & data)
    findings = {k for k in everything if k.path[-1] == "findings"}
    assert len(findings) >= 7 and findings <= evaluation


def test_every_asset_has_kinds_owners_and_its_study():
    import dagster as dg

    from pipelines.definitions import PAPERS, defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assert "parquet" in node.kinds and node.owners == ["team:reprolab"], key
        assert node.tags["reprolab/study"] == node.group_name, key
        if node.group_name in PAPERS:
            assert node.tags["reprolab/paper"] == PAPERS[node.group_name][0]
    trained = graph.get(dg.AssetKey("lm_facts_small"))
    assert {"pytorch", "mlflow"} <= trained.kinds
    described = {key for key in graph.get_all_asset_keys() if graph.get(key).description}
    assert graph.get_all_asset_keys() - described == set(), "assets without a description (the UI shows it)"
    # every study (a room with findings) names its paper in PAPERS: a new room gets no paper tag otherwise
    studies = {key.path[0] for key in graph.get_all_asset_keys() if len(key.path) == 2 and key.path[1] == "findings"}
    assert studies and studies <= set(PAPERS), sorted(studies - set(PAPERS))


def test_runs_carry_profile_and_commit_tags():
    from pipelines.definitions import defs
    from resources.settings import git_commit

    for name in ("main", "nightly_evaluation", "training"):
        tags = defs.resolve_job_def(name).tags
        assert tags["reprolab/profile"] == "tiny" and tags["reprolab/git_commit"] == git_commit() != ""


def test_an_ad_hoc_materialization_is_tagged_too(resources_for):
    """The UI's or the CLI's materializations run an implicit asset job without the jobs' tags: the IO manager
    adds them on the run's first step."""
    import dagster as dg

    from resources.settings import git_commit

    @dg.asset(group_name="toy")
    def toy_table():
        import pandas as pd

        return pd.DataFrame({"x": [1]})

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([toy_table], resources=resources_for, instance=instance)
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["reprolab/profile"] == "tiny" and tags["reprolab/git_commit"] == git_commit()


def test_the_commit_says_when_the_tree_is_dirty_and_an_image_can_name_it(tmp_path, monkeypatch):
    import shutil
    import subprocess

    import resources.settings as settings

    monkeypatch.setenv("REPROLAB_GIT_COMMIT", "abc1234")
    settings.git_commit.cache_clear()  # read once per process
    assert settings.git_commit() == "abc1234"  # an image without .git (deploy/Dockerfile's GIT_COMMIT)
    monkeypatch.delenv("REPROLAB_GIT_COMMIT")
    settings.git_commit.cache_clear()
    repo = tmp_path / "checkout"
    (repo / "resources").mkdir(parents=True)
    shutil.copy(settings.__file__, repo / "resources" / "settings.py")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(settings, "__file__", str(repo / "resources" / "settings.py"))
    sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    settings.git_commit.cache_clear()
    assert settings.git_commit() == sha
    (repo / "resources" / "settings.py").write_text("# changed\n")
    settings.git_commit.cache_clear()
    assert settings.git_commit() == sha + "-dirty"
    settings.git_commit.cache_clear()  # the real checkout's again for the tests that follow


def test_code_versions_follow_the_source_of_the_asset_and_the_science_it_imports(monkeypatch):
    import dagster as dg

    import pipelines.definitions as definitions
    from pipelines.definitions import defs, source_version

    graph = defs.resolve_asset_graph()
    versions = {key: graph.get(key).code_version for key in graph.get_all_asset_keys()}
    assert all("+src." in v for v in versions.values())
    assert versions[dg.AssetKey("safety_items")].startswith("1+src.")
    assert versions[dg.AssetKey("chat_tokenizer")].startswith("2+src.")  # the declared version stays in front

    import assets.safety.defs as safety

    fn = safety.safety_items.op.compute_fn.decorated_fn  # its body imports assets.safety.battery
    before = source_version(fn)
    real = definitions._module_source
    monkeypatch.setattr(definitions, "_module_source",
                        lambda name: real(name) + ("# edited" if name == "assets.safety.battery" else ""))
    assert source_version(fn) != before  # the science it calls changed
    monkeypatch.setattr(definitions, "_module_source",
                        lambda name: real(name) + ("# edited" if name == "assets.robustness.attacks" else ""))
    assert source_version(fn) == before  # a module it does not reach: unchanged

    import assets.chat.defs as chat

    fn = chat.chat_sft.op.compute_fn.decorated_fn  # imports assets.chat.runs -> chat.sft -> lm.fused
    monkeypatch.setattr(definitions, "_module_source", real)
    before = source_version(fn)
    monkeypatch.setattr(definitions, "_module_source",
                        lambda name: real(name) + ("# edited" if name == "assets.lm.fused" else ""))
    assert source_version(fn) != before  # science two imports away changed: the asset's version too

    fn = safety.safety_policy.op.compute_fn.decorated_fn  # calls validity.<rule>, imported at defs' top
    monkeypatch.setattr(definitions, "_module_source", real)
    before = source_version(fn)
    monkeypatch.setattr(definitions, "_module_source",
                        lambda name: real(name) + ("# edited" if name == "assets.safety.validity" else ""))
    assert source_version(fn) != before



def test_every_launchpad_field_says_what_it_is():
    """Every field of every asset's Config and of every resource has a description (the launchpad shows it)."""
    import inspect

    import dagster as dg

    from pipelines.definitions import defs

    configs = {type(r) for r in defs.resources.values() if isinstance(r, dg.ConfigurableResource)}
    for a in defs.assets:
        fn = getattr(getattr(a, "op", None), "compute_fn", None)
        for p in inspect.signature(getattr(fn, "decorated_fn", lambda: None)).parameters.values():
            if inspect.isclass(p.annotation) and issubclass(p.annotation, dg.Config):
                configs.add(p.annotation)
    missing = []
    for config in configs:
        for name, field in config.model_fields.items():
            nested = field.annotation if inspect.isclass(field.annotation) else None
            if not field.description:
                missing.append(f"{config.__module__}.{config.__name__}.{name}")
            if nested is not None and issubclass(nested, dg.Config):
                missing += [f"{nested.__name__}.{n}" for n, f in nested.model_fields.items() if not f.description]
    assert len(configs) > 30 and not missing, missing
