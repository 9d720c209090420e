"""Where things live: the warehouse root and the stores derived from it."""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from pathlib import Path

WAREHOUSE_ENV = "REPROLAB_WAREHOUSE"


class ConfigurationError(ValueError):
    """A setting has a value the lab cannot use; the message names the setting and what was expected."""


def default_warehouse_root() -> str:
    """`REPROLAB_WAREHOUSE` if set, else ``./warehouse`` under the current directory."""
    return os.environ.get(WAREHOUSE_ENV) or str(Path.cwd() / "warehouse")


def ensure_writable_dir(path: str | Path, setting: str) -> Path:
    """Create ``path`` if needed and prove it is writable, or raise ConfigurationError naming ``setting``."""
    p = Path(path).expanduser().resolve()
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}={str(path)!r} must be a writable directory, but it is not: {exc.strerror or exc}"
        ) from exc
    return p


GIT_COMMIT_ENV = "REPROLAB_GIT_COMMIT"


@functools.cache
def git_commit() -> str:
    """The code's commit: ``$REPROLAB_GIT_COMMIT`` when set (an image built without ``.git``), else the checkout's
    short commit with ``-dirty`` when tracked files differ from it, or "unknown" outside a git checkout."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=here)
        sha = out.stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=5, cwd=here)
        return sha + ("-dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
