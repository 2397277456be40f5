"""What the workbook asks of git: the pristine stubs, and the `solutions` branch.

The learner's branch, index and working tree are never touched: the branch is built with
git's plumbing and a temporary index, and stubs are read from git's object store.
"""

import hashlib
import json
import os
import subprocess
import tempfile

from . import metadata

STUBS = metadata.ROOT / "workbook" / "stubs.json"
BRANCH = "solutions"


class GitError(Exception):
    """A git problem worth one line to the user."""


def git(*args, env=None, raw=False):
    done = subprocess.run(
        ["git", *args], cwd=metadata.ROOT, capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        error = done.stderr.strip().splitlines()
        raise GitError(error[-1] if error else f"git {args[0]} failed")
    return done.stdout if raw else done.stdout.strip()


def require_checkout():
    try:
        inside = git("rev-parse", "--is-inside-work-tree")
        top = git("rev-parse", "--show-toplevel")
    except (GitError, FileNotFoundError):
        inside, top = "false", ""
    if inside != "true" or os.path.realpath(top) != os.path.realpath(metadata.ROOT):
        raise GitError(f"{metadata.ROOT} is not a git checkout of the workbook (git clone it)")


def learner_paths():
    """Every learner file, relative to the repo: exercises/<folder>/<file>."""
    return [
        f"exercises/{exercise.folder}/{name}"
        for exercise in metadata.exercises()
        for name in exercise.learner_files
    ]


def stub_blobs():
    """The recorded git blob of every pristine stub, by path."""
    return json.loads(STUBS.read_text())


def blob_id(data):
    """The id git gives a file's content (`git hash-object`), computed without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def current_blobs():
    return {path: blob_id((metadata.ROOT / path).read_bytes()) for path in learner_paths()}


def update_stubs():
    """Record the stubs as they are now (maintainers: after changing a stub, then commit)."""
    STUBS.write_text(json.dumps(current_blobs(), indent=2, sort_keys=True) + "\n")


def pristine_stub(path):
    """The stub's original text, from git's objects: works even after you committed yours."""
    require_checkout()
    blob = stub_blobs()[path]
    try:
        return git("cat-file", "blob", blob, raw=True)
    except GitError:
        raise GitError(f"git has no copy of the original {path} (blob {blob[:10]})") from None


def solutions_branch():
    """Create or update the branch `solutions`: HEAD with every stub replaced by its answer.

    Returns (commit, created, changed). Nothing outside refs/heads/solutions changes.
    """
    require_checkout()
    try:
        head = git("rev-parse", "--verify", "HEAD^{commit}")
    except GitError:
        raise GitError("this repository has no commit yet: commit first") from None
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        git("read-tree", head, env=index)
        for path in learner_paths():
            answer = path.replace("exercises/", "solutions/", 1)
            blob = git("hash-object", "-w", answer)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git("write-tree", env=index)
    try:
        previous = git("rev-parse", "--verify", f"refs/heads/{BRANCH}^{{commit}}")
    except GitError:
        previous = None
    if previous and git("rev-parse", f"{previous}^{{tree}}") == tree:
        return previous, False, False
    # Keep the branch's history, and record which of your commits it answers.
    parents = [previous] if previous else []
    if not previous or not _is_ancestor(head, previous):
        parents.append(head)
    message = f"Reference answers on top of {head[:10]}\n\nMade by `workbook solutions-branch`."
    commit = git("commit-tree", tree, *[arg for p in parents for arg in ("-p", p)], "-m", message)
    git("update-ref", f"refs/heads/{BRANCH}", commit)
    return commit, previous is None, True


def _is_ancestor(commit, of):
    try:
        git("merge-base", "--is-ancestor", commit, of)
        return True
    except GitError:
        return False
