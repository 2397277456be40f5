"""What the workbook asks of git: the pristine stubs, and the `solutions` branch.

The learner's branch, index and working tree are never touched: the branch is built with
git's plumbing and a temporary index, and stubs are read from git's object store. The
workbook updates only a `solutions` branch it made itself: the git config key
`workbook.solutionsBranch` records the commit it last wrote there.
"""

import hashlib
import json
import os
import subprocess
import tempfile

from . import metadata

STUBS = metadata.ROOT / "workbook" / "stubs.json"
BRANCH = "solutions"
# The commit `workbook solutions-branch` last wrote to the branch: it updates no other.
OWNER_KEY = "workbook.solutionsBranch"


class GitError(Exception):
    """A git problem worth one line to the user."""


def git(*args, env=None, raw=False, binary=False):
    """Run git in the workbook; its output (stripped unless raw, bytes if binary)."""
    done = subprocess.run(
        ["git", *args], cwd=metadata.ROOT, capture_output=True, text=not binary,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace") if binary else done.stderr
        error = stderr.strip().splitlines()
        raise GitError(error[-1] if error else f"git {args[0]} failed")
    return done.stdout if raw or binary else done.stdout.strip()


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


def edited_stubs():
    """The learner files that are not their recorded stub (missing ones included): a
    learner's work, or a stub a maintainer changed without `stubs --update`."""
    recorded = stub_blobs()
    edited = []
    for path in learner_paths():
        try:
            data = (metadata.ROOT / path).read_bytes()
        except OSError:
            data = None
        if data is None or recorded.get(path) != blob_id(data):
            edited.append(path)
    return edited


def uncommitted(paths):
    """Those of PATHS whose working copy is not their blob in HEAD (changed, new or gone)."""
    listed = git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths,
                 raw=True)
    # Each entry is "XY path"; a rename adds the old path as an entry of its own.
    return sorted({entry[3:] for entry in listed.split("\0") if len(entry) > 3} & set(paths))


def update_stubs():
    """Record the learner files as the stubs (maintainers: after committing a changed stub).

    Refused with a GitError, nothing written, when a learner file's working copy differs from
    HEAD (`reset` reads a stub back from git's objects, and an edit in progress is a
    learner's), or when a file to record has no TODO (every stub says what is left to do).
    """
    require_checkout()
    changed = uncommitted(learner_paths())
    if changed:
        raise GitError(
            f"not recording {', '.join(changed)}: a stub is recorded only once committed as "
            f"it is, never an edit in progress (a learner's: {resets(changed)} puts the stub "
            "back)"
        )
    answers = [path for path in edited_stubs()
               if b"TODO" not in (metadata.ROOT / path).read_bytes()]
    if answers:
        raise GitError(
            f"not recording {', '.join(answers)}: a stub has a TODO for the learner, this has "
            f"none (a learner's answer: {resets(answers)} puts the stub back)"
        )
    STUBS.write_text(json.dumps(current_blobs(), indent=2, sort_keys=True) + "\n")


def resets(paths):
    """The `workbook reset N` commands that put the stubs of PATHS back, to print."""
    numbers = sorted({int(path.split("/")[1].split("_")[0]) for path in paths})
    return ", ".join(f"`{metadata.runnable(f'workbook reset {number}')}`" for number in numbers)


def is_stub(path, data):
    """Whether `data` is the recorded stub of `path` (with LF or CRLF line endings)."""
    recorded = stub_blobs().get(path)
    return recorded in (blob_id(data), blob_id(data.replace(b"\r\n", b"\n")))


def pristine_stub(path):
    """The stub's original bytes, from git's objects: works even after you committed yours."""
    require_checkout()
    blob = stub_blobs()[path]
    try:
        return git("cat-file", "blob", blob, binary=True)
    except GitError:
        raise GitError(f"git has no copy of the original {path} (blob {blob[:10]})") from None


def solutions_branch():
    """Create or update the branch `solutions`: HEAD with every stub replaced by its answer.

    Returns (commit, created, changed). Nothing outside refs/heads/solutions (and the config
    key recording it) changes. A branch `solutions` that the workbook did not write, or that
    is checked out in a worktree, is refused with a GitError.
    """
    require_checkout()
    try:
        head = git("rev-parse", "--verify", "HEAD^{commit}")
    except GitError:
        raise GitError("this repository has no commit yet: commit first") from None
    try:
        previous = git("rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}^{{commit}}")
    except GitError:
        previous = None
    _check_ours(previous)
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        git("read-tree", head, env=index)
        for path in learner_paths():
            answer = path.replace("exercises/", "solutions/", 1)
            blob = git("hash-object", "-w", answer)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git("write-tree", env=index)
    if previous and git("rev-parse", f"{previous}^{{tree}}") == tree:
        return previous, False, False
    # Keep the branch's history, and record which of your commits it answers.
    parents = [previous] if previous else []
    if not previous or not _is_ancestor(head, previous):
        parents.append(head)
    message = f"Reference answers on top of {head[:10]}\n\nMade by `workbook solutions-branch`."
    commit = git("commit-tree", tree, *[arg for p in parents for arg in ("-p", p)], "-m", message)
    # Compare and swap: fails if the branch moved (or appeared) since it was checked.
    git("update-ref", "-m", "workbook solutions-branch", f"refs/heads/{BRANCH}", commit,
        previous or "")
    git("config", OWNER_KEY, commit)
    return commit, previous is None, True


def _check_ours(previous):
    """Refuse a branch `solutions` the workbook did not write, or one checked out anywhere."""
    rename = f"rename yours (git branch -m {BRANCH} my-{BRANCH}) and run it again"
    if previous is not None:
        try:
            recorded = git("config", "--get", OWNER_KEY)
        except GitError:
            recorded = None
        if recorded != previous:
            if recorded and _is_ancestor(recorded, previous):
                raise GitError(
                    f"the branch '{BRANCH}' has commits `workbook solutions-branch` did not "
                    f"write: {rename}"
                )
            raise GitError(
                f"a branch '{BRANCH}' exists that `workbook solutions-branch` did not make: "
                f"{rename}"
            )
    busy = checked_out_in()
    if busy:
        raise GitError(
            f"the branch '{BRANCH}' is checked out in {busy[0]}: switch that worktree to another "
            "branch (git switch --detach), then run `workbook solutions-branch` again"
        )


def checked_out_in():
    """The worktrees (this one included) that have the branch `solutions` checked out."""
    paths, path = [], None
    for line in git("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = line[len("worktree "):]
        elif line == f"branch refs/heads/{BRANCH}":
            paths.append(path)
    return paths


def _is_ancestor(commit, of):
    try:
        git("merge-base", "--is-ancestor", commit, of)
        return True
    except GitError:
        return False
