"""The real browser the browser tests drive: Debian's chromium and chromium-driver."""

import os
import shutil
import subprocess

PACKAGES = ["chromium", "chromium-driver"]


def ensure_chromium():
    """Install Debian's Chromium and its driver when they are missing and we may; else say how."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"workbook: installing {' and '.join(PACKAGES)} for the browser tests", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.check_call(["apt-get", "update", "-qq"], env=env)
        subprocess.check_call(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], env=env
        )
        return
    print(
        "workbook: the browser tests need Chromium and its driver; on Debian or Ubuntu: "
        f"sudo apt-get install {' '.join(PACKAGES)}", flush=True,
    )
