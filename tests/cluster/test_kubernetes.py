"""The Kubernetes side, checked against dagster-k8s's own config schemas and job builder. There is no cluster
here: nothing is submitted; what is checked is that the config dagster-k8s would receive is valid and renders
to the pods we mean (GPU limit, node selector, toleration) and that the Helm values point at this code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def location():
    import pipelines.kubernetes as location

    return location


def test_executor_config_is_valid_for_the_k8s_job_executor(location):
    from dagster._config import validate_config
    from dagster_k8s import k8s_job_executor

    config = location.executor_config(location.one_machine_location.defs)
    result = validate_config(k8s_job_executor.config_schema.config_type, config)
    assert result.success, [e.message for e in result.errors]
    # every job of the location runs its steps as Kubernetes Jobs
    for job in ("main", "nightly_evaluation", "training"):
        assert location.defs.resolve_job_def(job).executor_def.name == "reprolab_k8s"
    # the same graph and schedules; only the one-machine (pid-based) dead-run sensor is left out
    graph, local = location.defs.resolve_asset_graph(), location.one_machine_location.defs.resolve_asset_graph()
    assert graph.get_all_asset_keys() == local.get_all_asset_keys()
    assert {s.name for s in location.defs.schedules} == {s.name for s in location.one_machine_location.defs.schedules}
    assert not {s.name for s in location.defs.sensors or ()} & {"dead_run_sensor"}
    # what `dagster api grpc -m pipelines.kubernetes` finds in the module: exactly this one Definitions object
    from dagster._core.workspace.autodiscovery import loadable_targets_from_loaded_module

    assert [t.target_definition for t in loadable_targets_from_loaded_module(location)] == [location.defs]
    location.defs.validate_loadable(location.defs)


def test_every_gpu_pool_step_gets_a_gpu_and_nothing_else_does(location):
    graph_ops = {a.node_def.name: getattr(a.node_def, "pool", None) for a in location.one_machine_location.defs.assets}
    per_step = location.executor_config(location.one_machine_location.defs)["per_step_k8s_config"]
    assert set(per_step) == {op for op, pool in graph_ops.items() if pool == "gpu"}
    assert {"lm_facts_small", "chat_sft", "safety_results"} <= set(per_step)
    assert "facts_documents" not in per_step


def test_torchrun_steps_ask_for_as_many_gpus_as_configured(location, monkeypatch):
    monkeypatch.setenv("REPROLAB_K8S_TORCHRUN_GPUS", "8")
    steps = location.gpu_steps(location.one_machine_location.defs)
    assert steps["lm_facts_large"] == 8 and steps["chat_sft"] == 1  # lm family trains under torchrun
    monkeypatch.setenv("REPROLAB_K8S_TORCHRUN_GPUS", "many")
    with pytest.raises(ValueError, match="REPROLAB_K8S_TORCHRUN_GPUS"):
        location.gpu_steps(location.one_machine_location.defs)
    monkeypatch.setenv("REPROLAB_K8S_GPU_NODE_SELECTOR", "gpu")
    with pytest.raises(ValueError, match="key=value"):
        location.gpu_node_selector()


def test_a_gpu_step_renders_to_a_job_on_a_gpu_node(location, monkeypatch):
    """dagster-k8s's own parser (op tag) and job builder turn the GPU config into the pod we mean."""
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    monkeypatch.setenv("REPROLAB_K8S_GPU_NODE_SELECTOR", "cloud.google.com/gke-accelerator=nvidia-h100-80gb")
    user_config = get_user_defined_k8s_config(location.gpu_op_tags(gpus=2))  # validates against the tag schema
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="registry.example.org/reprolab:abc123", dagster_home="/opt/dagster/dagster_home",
                            instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"], job_name="dagster-step-test", user_defined_k8s_config=user_config)
    pod = job.spec.template.spec
    assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "2"}
    assert pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert [(t.key, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "NoSchedule")]
    assert any(m.mount_path == "/dev/shm" for m in pod.containers[0].volume_mounts)


def test_helm_values_run_this_code_location_with_the_shared_stores(location):
    """The values file's run launcher config is valid for K8sRunLauncher, its code server loads this module, and
    every reprolab variable it sets is one the code reads."""
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", location.__name__]
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    snake = {"envConfigMaps": "env_config_maps", "envSecrets": "env_secrets", "imagePullPolicy": "image_pull_policy"}
    k8s = launcher["config"]["k8sRunLauncher"]
    run_config = {snake[k]: [e["name"] if isinstance(e, dict) else e for e in v] if isinstance(v, list) else v
                  for k, v in k8s.items() if k in snake}
    run_config |= {"instance_config_map": "dagster-instance", "service_account_name": "dagster",
                   "dagster_home": "/opt/dagster/dagster_home", "load_incluster_config": True}
    assert validate_config(K8sRunLauncher.config_type(), run_config).success
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"

    settings = yaml.safe_load((DEPLOY / "helm" / "reprolab-settings.yaml").read_text())["data"]
    assert {"reprolab-settings"} == {e["name"] for e in deployment["envConfigMaps"]} == {e["name"] for e in
                                                                                         k8s["envConfigMaps"]}
    code = "".join(p.read_text() for p in [*Path("resources").glob("*.py"), Path("pipelines/kubernetes.py")])
    assert {k for k in settings if k.startswith("REPROLAB_")} and all(k in code for k in settings if k.startswith("REPROLAB_"))
    assert settings["REPROLAB_WAREHOUSE_URL"].startswith("s3://")


def test_the_image_installs_the_cluster_extras_and_the_pinned_dagster_libraries():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert ".[cluster]" in dockerfile and "deploy/dagster-libraries.txt" in dockerfile
    pins = [line for line in (DEPLOY / "dagster-libraries.txt").read_text().splitlines() if line and line[0] != "#"]
    from importlib.metadata import version

    assert pins == [f"{name}=={version(name)}" for name in ("dagster-postgres", "dagster-k8s", "dagster-aws")]
