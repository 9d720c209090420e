"""The reprolab code location on Kubernetes: the same graph, every step a Kubernetes Job (dagster-k8s).

Load it instead of ``pipelines.definitions`` where runs should leave the machine: the Helm chart's user code
deployment runs ``dagster api grpc -m pipelines.kubernetes`` (see ``deploy/helm/values.yaml``). Nothing else
changes: assets, resources and jobs are those of ``pipelines.definitions``; the K8sRunLauncher (set in the Helm
values) starts each run in a pod, and this location's executor, Dagster's ``k8s_job_executor``, starts each
step in a Job of its own. GPU steps (assets in the ``gpu`` pool) get a GPU request, a node selector and a
toleration for GPU nodes through ``per_step_k8s_config``, the executor's per-op form of the
``dagster-k8s/config`` op tag (``gpu_op_tags`` is that tag, for an asset that wants it in its own
definition). Steps that train under ``torchrun`` (an ``nproc_per_node`` config field) ask for
``$REPROLAB_K8S_TORCHRUN_GPUS`` GPUs in one pod: torchrun starts one process per GPU there, as on one machine.

Settings (environment of the code server): ``REPROLAB_K8S_GPU_NODE_SELECTOR`` (``key=value[,key=value]``,
default ``nvidia.com/gpu.present=true``), ``REPROLAB_K8S_TORCHRUN_GPUS`` (default 1),
``REPROLAB_K8S_MAX_STEP_PODS`` (pods at once per run, default 8), ``REPROLAB_K8S_NAMESPACE`` (default: the run
launcher's). No cluster code lives here: scheduling, queues, retries and dead-run detection are Kubernetes' and
Dagster's.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dagster as dg
from dagster_k8s import k8s_job_executor

from pipelines import definitions as one_machine_location  # the module: one Definitions at module scope here
from resources.settings import ConfigurationError

GPU_RESOURCE = "nvidia.com/gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"
DEFAULT_GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"
# Every step pod: room for a tiny/demo step; GPU steps add their GPUs. Raise per step in run config if needed.
STEP_REQUESTS = {"cpu": "1", "memory": "4Gi"}


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{name}={raw!r} must be a positive whole number")
    return int(raw)


def gpu_node_selector() -> dict[str, str]:
    """``$REPROLAB_K8S_GPU_NODE_SELECTOR`` as a node selector (``key=value[,key=value]``)."""
    raw = os.environ.get("REPROLAB_K8S_GPU_NODE_SELECTOR", DEFAULT_GPU_NODE_SELECTOR)
    pairs = [p.strip() for p in raw.split(",") if p.strip()]
    if not pairs or any("=" not in p or p.startswith("=") for p in pairs):
        raise ConfigurationError(f"REPROLAB_K8S_GPU_NODE_SELECTOR={raw!r} must be key=value[,key=value], "
                                 f"e.g. {DEFAULT_GPU_NODE_SELECTOR}")
    return dict(p.split("=", 1) for p in pairs)


def gpu_step_config(gpus: int = 1, node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """The dagster-k8s config of a step on ``gpus`` GPUs: the GPUs as a resource limit (Kubernetes requests
    equal limits for GPUs), GPU nodes by selector and toleration, and a memory-backed /dev/shm (DataLoader
    workers and NCCL under torchrun need more than the container default of 64 MiB)."""
    return {
        "container_config": {
            "resources": {"limits": {GPU_RESOURCE: str(gpus)}, "requests": dict(STEP_REQUESTS)},
            "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}],
        },
        "pod_spec_config": {
            "node_selector": node_selector or gpu_node_selector(),
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory"}}],
        },
    }


def gpu_op_tags(gpus: int = 1) -> dict[str, str]:
    """The same config as an op tag (``@dg.asset(op_tags=gpu_op_tags())``); per-step executor config wins."""
    return {K8S_CONFIG_TAG: json.dumps(gpu_step_config(gpus))}


def _config_fields(node: Any) -> set[str]:
    schema = getattr(node, "config_schema", None)
    return set(getattr(getattr(schema, "config_type", None), "fields", None) or ())


def gpu_steps(definitions: dg.Definitions) -> dict[str, int]:
    """op name -> GPUs, for every op in the ``gpu`` pool: one GPU, or ``$REPROLAB_K8S_TORCHRUN_GPUS`` for an op
    that trains under torchrun."""
    torchrun_gpus = _positive_int("REPROLAB_K8S_TORCHRUN_GPUS", 1)
    steps = {}
    for definition in [*(definitions.assets or ()), *(definitions.asset_checks or ())]:
        node = getattr(definition, "node_def", None)
        if node is not None and getattr(node, "pool", None) == "gpu":
            steps[node.name] = torchrun_gpus if "nproc_per_node" in _config_fields(node) else 1
    return steps


def executor_config(definitions: dg.Definitions) -> dict[str, Any]:
    """The ``k8s_job_executor`` config of this location: every step a Job with modest requests, GPU steps on GPU
    nodes, owner references so step Jobs are cleaned up with their run."""
    selector = gpu_node_selector()
    config: dict[str, Any] = {
        "max_concurrent": _positive_int("REPROLAB_K8S_MAX_STEP_PODS", 8),
        "step_k8s_config": {"container_config": {"resources": {"requests": dict(STEP_REQUESTS)}}},
        "per_step_k8s_config": {op: gpu_step_config(gpus, selector) for op, gpus in sorted(gpu_steps(definitions).items())},
        "enable_owner_references": True,
    }
    if os.environ.get("REPROLAB_K8S_NAMESPACE"):
        config["job_namespace"] = os.environ["REPROLAB_K8S_NAMESPACE"]
    return config


# The pid-based dead-run sensor judges a run by its worker's pid on the machine the daemon runs on; run workers
# here live in pods of their own, so it is left out: the K8sRunLauncher's health check (run monitoring, on in
# deploy/helm/values.yaml) fails runs whose pod died.
ONE_MACHINE_ONLY_SENSORS = {"dead_run_sensor"}

def kubernetes_definitions(local: dg.Definitions) -> dg.Definitions:
    """``local`` (the one-machine location) with its steps on the k8s executor, less the one-machine sensors."""
    return dg.Definitions(
        assets=local.assets, asset_checks=local.asset_checks, jobs=local.jobs, schedules=local.schedules,
        resources=local.resources, loggers=local.loggers, metadata=local.metadata,
        sensors=[s for s in local.sensors or () if s.name not in ONE_MACHINE_ONLY_SENSORS],
        executor=k8s_job_executor.configured(executor_config(local), name="reprolab_k8s"),
    )


defs = kubernetes_definitions(one_machine_location.defs)  # the only Definitions at this module's scope
