"""Headless Chromium for the report's tests: Debian's package, installed here when missing (as root)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# As the machine's own probe runs it: no sandbox as root, and no background traffic to a closed network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium() -> str:
    """The path of a Chromium binary, installing Debian's `chromium` with apt-get if there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("the report's browser test needs Chromium: not installed, and this user cannot "
                    "`apt-get install chromium` (install it, then rerun)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = []
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        log.append(done.stdout[-2000:] + done.stderr[-2000:])
        if done.returncode != 0:
            pytest.skip(f"could not install Debian's chromium ({' '.join(cmd)} exited {done.returncode}): {log[-1]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"apt-get installed chromium but no `chromium` is on PATH: {log[-1]}")
    return found


def run(binary: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium on a local file with a fresh profile; a virtual-time budget lets the load event fire first."""
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
