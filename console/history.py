"""Every save from the console is a commit in the project's git history, and can be undone.

Git itself is the history: `git log` of the files operators own shows who changed what and
when (the console commits as the operator: name and `<login>@qunzhu.console`), `git show`
the difference, and `git revert` undoes a change as a new commit, so the undo is in the
history too. Writes are serialised in the process: two saves never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qunzhu.metrics import TZ

OWNED = ("data", "domain.yml")  # what operators edit; history lists changes to these
SHA = re.compile(r"^[0-9a-f]{7,40}$")
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary())


class HistoryError(RuntimeError):
    """Git could not do it; the reason in the console's words."""


@dataclass(frozen=True)
class Commit:
    """One change in the history."""

    sha: str
    author: str
    email: str
    at: str  # ISO 8601 with the offset
    message: str

    @property
    def local_time(self) -> str:
        """When, in the brand's time zone (git records the committer's own offset)."""
        try:
            return datetime.fromisoformat(self.at).astimezone(TZ).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return self.at[:16]

    @property
    def by_console(self) -> bool:
        return self.email.endswith("@qunzhu.console")


async def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=root, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise HistoryError(err.decode("utf-8", "replace").strip()[:300] or f"git {args[0]}")
    return out.decode("utf-8", "replace")


def _author(name: str, login: str) -> dict[str, str]:
    name = name if any(ch.isalnum() for ch in name) else login  # git refuses "." and the like
    ident = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": f"{login}@qunzhu.console",
             "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": f"{login}@qunzhu.console"}
    return {**os.environ, **ident}


async def available(root: Path) -> bool:
    """Whether the project is a git work tree (a copy without .git has no history)."""
    try:
        return (await _git(root, "rev-parse", "--is-inside-work-tree")).strip() == "true"
    except (HistoryError, OSError):
        return False


async def save(root: Path, files: dict[Path, str], message: str, *, name: str,
               login: str) -> str:
    """Write the files and commit exactly them as the operator; the new commit's sha.

    Call it holding `lock()`, the same hold in which `files` were computed from the files'
    current text, so no other edit lands in between and is overwritten.
    """
    if not lock().locked():
        raise RuntimeError("history.save needs history.lock() held")
    before = {rel: (root / rel).read_text("utf-8") for rel in files}
    paths = [str(rel) for rel in files]
    try:
        for rel, text in files.items():
            _write(root / rel, text)
        await _git(root, "add", "--", *paths)
        await _git(root, "commit", "--quiet", "--no-verify", "-m", message, "--", *paths,
                   env=_author(name, login))
    except (HistoryError, OSError):
        # Nothing half-done stays behind for the next save to commit under its name.
        with contextlib.suppress(HistoryError, OSError):
            await _git(root, "reset", "--quiet", "--", *paths)
        for rel, text in before.items():
            _write(root / rel, text)
        raise HistoryError("没能保存进历史（git 出错），文件已恢复原样，请稍后再试") from None
    return (await _git(root, "rev-parse", "HEAD")).strip()


def _write(target: Path, text: str) -> None:
    """Replace a file whole: a reader never sees half of it."""
    tmp = target.with_name(f".{target.name}.console-tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(target)


def lock() -> asyncio.Lock:
    """Held while an edit reads the files it will change and saves them (one per event loop,
    as an asyncio lock belongs to the loop it was first used on)."""
    loop = asyncio.get_running_loop()
    found = _LOCKS.get(loop)
    if found is None:
        found = _LOCKS[loop] = asyncio.Lock()
    return found


async def files_of(root: Path, sha: str) -> list[str]:
    """The files one change touched."""
    return [f for f in (await _git(root, "show", "--name-only", "--format=", sha)).splitlines()
            if f.strip()]


def owned(path: str) -> bool:
    return any(path == o or path.startswith(o + "/") for o in OWNED)


async def log(root: Path, limit: int = 100) -> list[Commit]:
    """The latest changes to what operators own, newest first."""
    out = await _git(root, "log", f"-{limit}", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1e",
                     "--", *OWNED)
    commits = []
    for record in out.split("\x1e"):
        parts = record.strip().split("\x1f")
        if len(parts) == 5:
            commits.append(Commit(*parts))
    return commits


async def show(root: Path, sha: str) -> str:
    """One change's difference (only what operators own)."""
    if not SHA.match(sha):
        raise HistoryError("没有这次改动")
    return await _git(root, "show", "--format=", "--no-color", sha, "--", *OWNED)


async def revert(root: Path, sha: str, *, name: str, login: str) -> str:
    """Undo one change with a new commit; refused (and nothing changed) when later edits
    touched the same lines."""
    if not SHA.match(sha):
        raise HistoryError("没有这次改动")
    async with lock():
        try:
            touched = await files_of(root, sha)
        except HistoryError:
            raise HistoryError("没有这次改动") from None
        if not touched or not all(owned(f) for f in touched):
            raise HistoryError("这次改动还改了程序文件，只能由开发同事撤销")
        changed = await _git(root, "status", "--porcelain", "--", *OWNED)
        if changed.strip():
            raise HistoryError("有还没保存进历史的改动（有人直接改了文件），请先让开发同事处理")
        subject = (await _git(root, "log", "-1", "--format=%s", sha)).strip()
        try:
            await _git(root, "revert", "--no-commit", sha)
        except HistoryError:
            await _undo_revert(root)
            raise HistoryError("这次改动之后，同样的地方又被改过，不能直接撤销；"
                               "请先撤销后来的改动") from None
        try:
            await _git(root, "commit", "--quiet", "--no-verify", "-m", f"撤销：{subject}",
                       env=_author(name, login))
        except HistoryError:
            await _undo_revert(root)
            raise HistoryError("没能保存撤销（git 出错），文件已恢复原样，请稍后再试") from None
        return (await _git(root, "rev-parse", "HEAD")).strip()


async def _undo_revert(root: Path) -> None:
    """Back to HEAD for what operators own, and no revert left in progress."""
    with contextlib.suppress(HistoryError):
        await _git(root, "revert", "--quit")
    with contextlib.suppress(HistoryError):
        await _git(root, "reset", "--quiet", "--", *OWNED)
    with contextlib.suppress(HistoryError):
        await _git(root, "checkout", "--quiet", "HEAD", "--", *OWNED)


TRAINING_INPUTS = ("data/nlu", "data/rules", "data/stories", "domain.yml", "config.yml")


async def unpublished(root: Path, *, after_commit: str = "", after_time: float = 0.0,
                      limit: int = 30) -> list[Commit]:
    """Changes to what the model is trained from since the live model (what 发布 would ship).

    The live model names the commit it was trained from; the first one (`make train`) names
    none, so commits newer than it count.
    """
    span = [f"{after_commit}..HEAD"] if after_commit and SHA.match(after_commit) else []
    since = [f"--since=@{int(after_time)}"] if not span and after_time else []
    try:
        out = await _git(root, "log", f"-{limit}", *span, *since,
                         "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1e", "--", *TRAINING_INPUTS)
    except (HistoryError, OSError):
        return []
    return [Commit(*parts) for parts in (r.strip().split("\x1f") for r in out.split("\x1e"))
            if len(parts) == 5]
