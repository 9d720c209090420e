#!/usr/bin/env bash
# The wheels the borrowed GPU machine lacks to run the lab's Dagster graph, downloaded HERE (where pip reaches
# the package registry) into .whl/ (git-ignored), for the machine to install with --no-deps (it has no network):
#
#     bash benchmarks/device_wheels.sh              # cp312 manylinux x86-64 wheels into .whl/ (the GPU image)
#     PYVER=3.11 DEST=/tmp/whl311 bash benchmarks/device_wheels.sh   # the same set for a Python 3.11 rehearsal
#
# The GPU image (nvidia-h200, Python 3.12) already holds torch, transformers, tokenizers, safetensors, numpy,
# pandas, pyarrow, scipy, scikit-learn, matplotlib, tabulate, jinja2, click, grpcio, protobuf, requests, rich,
# pyyaml, packaging ... (the device tool's KINDS.md lists them); we carry only what it lacks, at the exact versions
# of our .venv (`pip freeze`), one version of each, without dependencies:
#   - dagster, dagster-pipes, dagster-shared and their missing dependencies (pydantic, sqlalchemy, alembic, ...).
#     Not dagster-webserver or dagster-graphql: `dagster asset materialize` needs no UI.
#   - mlflow-skinny instead of mlflow: the same Python package (tracking, the SQLite store, the registry,
#     pyfunc) without the UI's JavaScript and the server's extras; sqlalchemy and alembic for the SQLite store.
#   - duckdb; great-expectations and its missing dependencies (altair, jsonschema, marshmallow, ...).
#   - Left out, because nothing the graph runs imports them: dagster-webserver, dagster-graphql, openai (chat
#     endpoints only), the `cluster` extra, dev tools.
# The wheels plus the working tree must stay under the device tool's 64 MiB; the script prints both sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}
VENV_PIP=${VENV_PIP:-.venv/bin/pip}

CARRY=(
    # Dagster (run and event storage on SQLite, the multiprocess executor, the CLI)
    dagster dagster-pipes dagster-shared
    alembic sqlalchemy mako antlr4-python3-runtime coloredlogs humanfriendly docstring-parser
    grpcio-health-checking python-dotenv pytz structlog tomli tomlkit toposort tzdata universal-pathlib
    pathlib-abc platformdirs watchdog
    pydantic pydantic-core annotated-types typing-inspection
    # MLflow: tracking, the SQLite backend store, the model registry, pyfunc
    mlflow-skinny cachetools databricks-sdk google-auth pyasn1 pyasn1-modules gitpython gitdb smmap
    importlib-metadata opentelemetry-api opentelemetry-proto opentelemetry-sdk opentelemetry-semantic-conventions
    sqlparse fastapi starlette uvicorn  # `import mlflow` imports mlflow.gateway, which imports fastapi
    # the catalog
    duckdb
    # Great Expectations (GX Core 1.x, ephemeral context)
    great-expectations altair jsonschema jsonschema-specifications referencing rpds-py marshmallow mistune
    ruamel-yaml tzlocal cryptography cffi pycparser
    # in the image, but ours: pydantic needs typing-extensions>=4.16 and altair narwhals>=2.4, and the image's
    # versions are not known here (both pure Python, newer versions backward compatible)
    typing-extensions narwhals
)

# our .venv's versions, names normalised (PyYAML -> pyyaml, great_expectations -> great-expectations)
freeze=$("$VENV_PIP" freeze 2>/dev/null | grep '==' | awk -F'==' '{n=tolower($1); gsub(/[-_.]+/, "-", n); print n "==" $2}')
reqs=()
for name in "${CARRY[@]}"; do
    pinned=$(grep -m1 "^${name}==" <<<"$freeze" || true)
    [ -n "$pinned" ] || { echo "error: $name is not installed in .venv: cannot pin its version" >&2; exit 2; }
    reqs+=("$pinned")
done

platforms=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
glibc_max=$([ "$PYVER" = 3.12 ] && echo 39 || echo 36)  # the GPU image's glibc (Ubuntu 24.04) / this machine's
for n in $(seq 5 "$glibc_max"); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done

mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: a stale second version would stop the whole install there
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${platforms[@]}" -d "$DEST" "${reqs[@]}" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
[ "${PIPESTATUS[0]}" = 0 ] || { echo "error: pip download failed" >&2; exit 1; }

echo "$(ls "$DEST"/*.whl | wc -l) wheels for cp${PYVER/./} in $DEST:"
du -sh "$DEST"
echo "tracked working tree: $(git ls-files -z | du -ch --files0-from=- 2>/dev/null | tail -1 | cut -f1)" \
     "(the device tool's limit: 64 MiB for the tree and the carried wheels together)"
