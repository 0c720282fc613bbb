"""What operators teach the bot, written into the project's own files in its own format.

Two edits, both computed as new file contents first (for the preview and validation) and
written only on save:

- examples added to an intent (or an FAQ, `faq/<key>`) in `data/nlu/*.yml`, appended to its
  `examples: |` block;
- a new FAQ: a `faq/<key>` block at the end of `data/nlu/faq.yml` and its `utter_faq/<key>`
  answers after the last FAQ answer in `domain.yml`.

Edits are textual, so every other line — comments, order, wording — stays as the team wrote
it, and the git diff shows exactly what the operator changed. Each result is parsed again and
checked before it is offered: an example already taught to another intent, an unknown
{placeholder} or a malformed key is refused with the field named in Chinese.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qunzhu.textnorm import normalise

NLU_DIR = Path("data/nlu")
FAQ_FILE = NLU_DIR / "faq.yml"
DOMAIN = Path("domain.yml")
KEY = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_EXAMPLE = 100
MAX_ANSWER = 1000
EXAMPLE_LINE = "      - "
# Rasa reads its own markup inside examples: [text](entity), [text]{...}, [text][...]. A
# member's words must stay words, or one odd message breaks training for the whole project.
ENTITY_MARKUP = re.compile(r"\[[^\]]*\]\s*[({\[]")


class TeachError(ValueError):
    """An edit that cannot be made, said for the operator (naming the field)."""


@dataclass(frozen=True)
class Change:
    """New contents of the files an edit touches, and how to describe it."""

    files: dict[Path, str]  # relative path → new text
    summary: str  # the commit message (Chinese)

    def diff(self, root: Path) -> str:
        """A unified diff of the change against the files as they are now."""
        out: list[str] = []
        for rel, new in self.files.items():
            old = (root / rel).read_text("utf-8") if (root / rel).exists() else ""
            out += difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}", n=2)
        return "".join(out)


def _nlu_files(root: Path) -> list[Path]:
    return sorted((root / NLU_DIR).glob("*.yml"))


def taught(root: Path) -> dict[str, str]:
    """Every example in the training data (normalised) → the intent it belongs to."""
    out: dict[str, str] = {}
    for path in _nlu_files(root):
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
        for block in doc.get("nlu") or []:
            if isinstance(block, dict) and "intent" in block:
                for line in str(block.get("examples") or "").splitlines():
                    text = line.strip().removeprefix("- ").strip()
                    if text:
                        out[normalise(text)] = str(block["intent"])
    return out


def intents(root: Path, known: dict[str, str] | None = None) -> list[str]:
    """The intents examples can go to: domain.yml's (but `faq` itself) and every FAQ key
    (from `known`, the training data as `taught` read it, when the caller has it already)."""
    domain = yaml.safe_load((root / DOMAIN).read_text("utf-8")) or {}
    names = [str(i) for i in domain.get("intents") or [] if str(i) != "faq"]
    examples = taught(root) if known is None else known
    faqs = sorted({i for i in examples.values() if i.startswith("faq/")})
    return names + faqs


def clean_examples(texts: list[str], known: dict[str, str], intent: str = "") -> list[str]:
    """The examples as they will be written: one line each, new, not another intent's
    (`known`: every example taught so far, from `taught`)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in texts:
        text = " ".join(raw.split())
        text = re.sub(r"^[-#>*|&!%@`'\"\[\]{}:]+\s*", "", text)  # nothing YAML reads as syntax
        if not text:
            continue
        if len(text) > MAX_EXAMPLE:
            raise TeachError(f"例句“{text[:20]}…”太长了（最多 {MAX_EXAMPLE} 个字）")
        if ENTITY_MARKUP.search(text):
            raise TeachError(f"例句“{text}”里有方括号加括号的写法（训练数据的标注格式），"
                             "请去掉方括号后再教")
        key = normalise(text)
        owner = known.get(key)
        if owner == intent or key in seen:
            continue  # already taught there: nothing to add
        if owner is not None:
            raise TeachError(f"例句“{text}”已经是 {owner} 的例句了，同一句话不能教给两个意图")
        seen.add(key)
        out.append(text)
    if not out:
        raise TeachError("例句：请至少选一句还没教过的成员原话")
    return out


def add_examples(root: Path, intent: str, texts: list[str]) -> Change:
    """Append examples to an intent's block, wherever in data/nlu it is."""
    known = taught(root)  # read once: both checks below need it
    if intent not in intents(root, known):
        raise TeachError(f"意图：没有“{intent}”这个意图，请从列表里选")
    examples = clean_examples(texts, known, intent)
    header = f"  - intent: {intent}\n    examples: |\n"
    for path in _nlu_files(root):
        text = path.read_text("utf-8")
        start = text.find(header)
        if start < 0:
            continue
        lines = text[start + len(header):].splitlines(keepends=True)
        taken = 0
        while taken < len(lines) and lines[taken].startswith(EXAMPLE_LINE):
            taken += 1
        cut = start + len(header) + sum(len(line) for line in lines[:taken])
        if cut and text[cut - 1] != "\n":
            raise TeachError(f"{path.name} 的格式和平常不一样，请让开发同事看一下")
        added = "".join(f"{EXAMPLE_LINE}{e}\n" for e in examples)
        new = text[:cut] + added + text[cut:]
        change = Change({path.relative_to(root): new},
                        f"给 {intent} 添加 {len(examples)} 条例句：" + "、".join(examples[:3]))
        _check(root, change)
        return change
    raise TeachError(f"意图：找不到 {intent} 的例句（data/nlu 里没有它）")


def add_faq(root: Path, key: str, questions: list[str], answers: list[str],
            placeholders: set[str]) -> Change:
    """A new FAQ: its questions as examples of faq/<key> and its answers in domain.yml."""
    key = key.strip().lower()
    if not KEY.match(key):
        raise TeachError("问题编号：用 2–40 位小写英文字母、数字或下划线，以字母开头，"
                         "例如 group_buy")
    intent = f"faq/{key}"
    known = taught(root)
    if intent in intents(root, known):
        raise TeachError(f"问题编号：{key} 已经有了，换一个，或把例句加到它下面")
    examples = clean_examples(questions, known, intent)
    replies = [" ".join(a.split()) for a in answers if a.strip()]
    if not replies:
        raise TeachError("回答：请写上机器人的回答")
    for reply in replies:
        if len(reply) > MAX_ANSWER:
            raise TeachError(f"回答：太长了（最多 {MAX_ANSWER} 个字）")
        try:
            names = {f for _t, f, _s, _c in string.Formatter().parse(reply) if f is not None}
        except ValueError:
            raise TeachError("回答：花括号 { } 只用来写占位符，比如 {hotline}；"
                             "单独的花括号请去掉") from None
        unknown = sorted(n for n in names if n not in placeholders)
        if unknown:
            raise TeachError(f"回答：不认识的占位符 {{{unknown[0]}}}；可用的有："
                             + "、".join(f"{{{p}}}" for p in sorted(placeholders)))
    faq_text = (root / FAQ_FILE).read_text("utf-8")
    block = (f"  - intent: {intent}\n    examples: |\n"
             + "".join(f"{EXAMPLE_LINE}{e}\n" for e in examples))
    new_faq = faq_text.rstrip("\n") + "\n" + block
    domain_text = (root / DOMAIN).read_text("utf-8")
    new_domain = _insert_answer(domain_text, key, replies)
    change = Change({FAQ_FILE: new_faq, DOMAIN: new_domain},
                    f"新增常见问题 {key}：" + "、".join(examples[:3]))
    _check(root, change)
    return change


def _insert_answer(domain: str, key: str, replies: list[str]) -> str:
    """Put `utter_faq/<key>` right after the last FAQ answer (or at the end of responses)."""
    lines = domain.splitlines(keepends=True)
    last = max((i for i, line in enumerate(lines) if line.startswith("  utter_faq/")),
               default=None)
    if last is None:
        raise TeachError("domain.yml 里找不到常见问题的回答，请让开发同事看一下")
    end = last + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    block = [f"\n  utter_faq/{key}:\n"] + [
        f"    - text: {json.dumps(r, ensure_ascii=False)}\n" for r in replies]
    return "".join(lines[:end] + block + lines[end:])


def _check(root: Path, change: Change) -> None:
    """The changed files still parse, and say what the edit meant them to say."""
    for rel, text in change.files.items():
        try:
            doc: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TeachError(f"改完后 {rel} 读不出来了（{exc}），已取消") from None
        if not isinstance(doc, dict):
            raise TeachError(f"改完后 {rel} 格式不对，已取消")
        if rel == DOMAIN:
            responses = doc.get("responses") or {}
            if not all(isinstance(v, list) for v in responses.values()):
                raise TeachError("改完后 domain.yml 的回答格式不对，已取消")
        elif not isinstance(doc.get("nlu"), list):
            raise TeachError(f"改完后 {rel} 格式不对，已取消")
