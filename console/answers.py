"""常见问题: each FAQ's question wordings and answers, and the edit of its answers.

Reads the project's own files: the questions are the examples of `faq/<key>` in
`data/nlu/*.yml`, the answers the `- text:` variations of `utter_faq/<key>` in `domain.yml`.

An edit is textual, like console.trainingdata's: only that response's `- text:` lines are
replaced, each answer written as a double-quoted (JSON-style) scalar so `:`, `#`, quotes and
line breaks stay words; every other line, comment and the order stay as the team wrote them,
and the git diff shows exactly what the operator changed. The result is parsed again (PyYAML
and ruamel, which Rasa and the actions read with) and must say exactly the new answers, with
nothing else moved, before it is offered. The action server reads domain.yml live
(actions.answers), so a saved answer reaches members within a second or two, no retraining.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from console.trainingdata import DOMAIN, MAX_ANSWER, NLU_DIR, Change, TeachError
from qunzhu.yamlconfig import ConfigError, load_yaml

PREFIX = "utter_faq/"
MAX_VARIATIONS = 20
# What an answer may quote and what it means to an operator. The action fills exactly these
# (actions.faq.facts; a test keeps the two in step).
PLACEHOLDERS: dict[str, str] = {
    "brand_name": "品牌名",
    "bot_name": "机器人在群里的名字",
    "hotline": "客服电话",
    "service_hours": "客服时间",
    "opening_hours": "门店营业时间",
    "hours_note": "营业时间备注",
    "opening_hours_text": "营业时间的完整说法（按各门店自动生成）",
    "store_list": "所有门店的名称、地址和营业时间（每店一行）",
    "delivery_channels": "外卖渠道",
    "delivery_radius_km": "外卖配送范围（公里）",
    "delivery_min_order": "外卖起送金额（元）",
    "delivery_fee": "外卖配送费（元）",
    "delivery_free_over": "满多少元免配送费",
    "delivery_hours": "外卖配送时间",
    "membership": "会员权益",
    "refund_policy": "退款说明",
    "invoice_policy": "发票说明",
    "checkin_base_points": "每天打卡得的积分",
    "streak_bonus_text": "连续打卡奖励",
    "draw_daily_limit": "每人每天能抽几次奖",
    "draw_cost_text": "抽奖要不要积分",
    "draw_prizes": "奖品名称",
}
_BRACED = re.compile(r"\{([^{}]*)\}")
# Characters YAML cannot hold as they are (control characters, lone surrogates): dropped.
_UNPRINTABLE = re.compile("[^\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|\ufeff")
_TEXT_LINE = re.compile(r'^    - text: (?![|>])\S')


@dataclass(frozen=True)
class Faq:
    """One FAQ as the files have it now."""

    key: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]

    @property
    def title(self) -> str:
        """How operators recognise it: its first question wording."""
        return self.questions[0] if self.questions else self.key


def _yaml(root: Path, rel: Path) -> Any:
    try:
        return yaml.safe_load((root / rel).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise TeachError(f"{rel} 读不出来了，请让开发同事看一下") from None


def _answers(root: Path) -> dict[str, tuple[str, ...]]:
    """key → the texts of `utter_faq/<key>`, in the file's order."""
    doc = _yaml(root, DOMAIN)
    responses = doc.get("responses") if isinstance(doc, dict) else None
    out: dict[str, tuple[str, ...]] = {}
    for name, variations in (responses if isinstance(responses, dict) else {}).items():
        if str(name).startswith(PREFIX) and isinstance(variations, list):
            out[str(name)[len(PREFIX):]] = tuple(
                str(v["text"]) for v in variations if isinstance(v, dict) and "text" in v)
    return out


def _questions(root: Path) -> dict[str, list[str]]:
    """key → the examples of `faq/<key>` across data/nlu, as written."""
    out: dict[str, list[str]] = {}
    for path in sorted((root / NLU_DIR).glob("*.yml")):
        doc = _yaml(root, path.relative_to(root))
        for block in (doc.get("nlu") if isinstance(doc, dict) else None) or []:
            intent = str(block.get("intent", "")) if isinstance(block, dict) else ""
            if not intent.startswith("faq/"):
                continue
            said = out.setdefault(intent[4:], [])
            for line in str(block.get("examples") or "").splitlines():
                text = line.strip().removeprefix("- ").strip()
                if text:
                    said.append(text)
    return out


def faqs(root: Path) -> list[Faq]:
    """Every FAQ: those with answers in domain.yml's order, then any with questions only."""
    answers, questions = _answers(root), _questions(root)
    keys = list(answers) + [k for k in questions if k not in answers]
    return [Faq(k, tuple(questions.get(k, ())), answers.get(k, ())) for k in keys]


def find(root: Path, key: str) -> Faq | None:
    """One FAQ by its key, or None."""
    return next((f for f in faqs(root) if f.key == key), None)


def placeholder_help() -> list[tuple[str, str]]:
    """({name}, what it means) for the form's help line."""
    return [(f"{{{name}}}", meaning) for name, meaning in PLACEHOLDERS.items()]


def short(text: str, limit: int = 60) -> str:
    """An answer on one line, cut to fit a list on a phone."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def clean(raw: str) -> str:
    """An answer as it will be saved: one kind of line break, nothing YAML cannot hold,
    no spaces trailing a line or around the whole."""
    text = _UNPRINTABLE.sub("", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def check_answer(row: int, text: str, placeholders: Collection[str]) -> None:
    """Refuse an answer too long or quoting a {placeholder} the bot cannot fill."""
    field = f"回答 {row}"
    if len(text) > MAX_ANSWER:
        raise TeachError(f"{field}：太长了（最多 {MAX_ANSWER} 字）")
    outside = _BRACED.sub("", text)
    if "{" in outside or "}" in outside:
        raise TeachError(f"{field}：花括号 {{ }} 只用来写占位符，比如 {{hotline}}；"
                         "单独的花括号请去掉")
    for name in _BRACED.findall(text):
        if name not in placeholders:
            raise TeachError(f"{field}：不认识的占位符 {{{name}}}，可用的有 "
                             + "、".join(f"{{{p}}}" for p in placeholders))


def cleaned(answers: list[str]) -> list[str]:
    """The answers to save, blank rows dropped; TeachError naming the row at fault."""
    out: list[str] = []
    for row, raw in enumerate(answers, start=1):
        text = clean(raw)
        if text:
            check_answer(row, text, PLACEHOLDERS)
            out.append(text)
    if not out:
        raise TeachError("回答：至少要有一条回答")
    if len(out) > MAX_VARIATIONS:
        raise TeachError(f"回答：最多 {MAX_VARIATIONS} 条，请删掉几条")
    return out


def quoted(text: str) -> str:
    """A double-quoted YAML scalar on one line (JSON's escapes are YAML's too)."""
    dumped = json.dumps(text, ensure_ascii=False)
    return dumped.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _replace(domain: str, key: str, answers: list[str]) -> str:
    """domain.yml with only the `- text:` lines of `utter_faq/<key>` replaced."""
    lines = domain.splitlines(keepends=True)
    header = re.compile(rf"^  {re.escape(PREFIX + key)}:[ \t]*(#.*)?$")
    starts = [i for i, line in enumerate(lines) if header.match(line.rstrip("\r\n"))]
    if len(starts) != 1:
        raise TeachError(f"domain.yml 里找不到 {PREFIX}{key} 的回答，请让开发同事看一下")
    start = starts[0]
    eol = "\r\n" if lines[start].endswith("\r\n") else "\n"
    new = [f"    - text: {quoted(a)}{eol}" for a in answers]
    body: list[str] = []
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        line = lines[end]
        if _TEXT_LINE.match(line):
            body += new
            new = []
        elif line.lstrip().startswith("#"):
            body.append(line)
        else:
            raise TeachError(f"domain.yml 第 {end + 1} 行：{PREFIX}{key} 的写法和平常不一样"
                             "（不止一行文字），请让开发同事改")
        end += 1
    if new:  # no text line at all: the answers go right under the header
        body = new + body
    return "".join(lines[:start + 1] + body + lines[end:])


def _verify(old: str, new: str, key: str, answers: list[str]) -> None:
    """The new file parses and differs from the old only in this response's answers."""
    name = PREFIX + key
    try:
        before, after = yaml.safe_load(old), yaml.safe_load(new)
        rt = load_yaml(DOMAIN, new)
    except (yaml.YAMLError, ConfigError):
        raise TeachError("改完后 domain.yml 读不出来了，已取消，请让开发同事看一下") from None
    expected = copy.deepcopy(before)
    expected["responses"][name] = [{"text": a} for a in answers]
    as_read = [dict(v) for v in (rt.get("responses") or {}).get(name) or []]
    if after != expected or as_read != expected["responses"][name]:
        raise TeachError("改完后 domain.yml 和预期的不一样，已取消，请让开发同事看一下")


def _changes(old: tuple[str, ...], new: list[str]) -> dict[str, list[str | None]]:
    """Answer row → [before, after] for the audit log (None before = added)."""
    out: dict[str, list[str | None]] = {}
    for i in range(max(len(old), len(new))):
        before = old[i] if i < len(old) else None
        after = new[i] if i < len(new) else "（删掉了）"
        if before != after:
            out[f"回答 {i + 1}"] = [before, after]
    return out


def edit(root: Path, key: str, answers: list[str]) -> tuple[Change, dict[str, list[str | None]]]:
    """New domain.yml with these answers for `utter_faq/<key>`, checked; and what changed
    (answer row → [before, after]) for the audit log."""
    found = find(root, key)
    if found is None:
        raise TeachError(f"问题编号：没有“{key[:40]}”这个常见问题，请从常见问题列表里选")
    if not found.answers:
        raise TeachError(f"domain.yml 里没有 {PREFIX}{key} 的回答，请让开发同事看一下")
    new = cleaned(answers)
    if tuple(new) == found.answers:
        raise TeachError("没有改动：回答和现在一样")
    old = (root / DOMAIN).read_text("utf-8")
    text = _replace(old, key, new)
    _verify(old, text, key, new)
    summary = f"修改常见问题“{short(found.title, 20)}”的回答（{key}，{len(new)} 条）"
    return Change({DOMAIN: text}, summary), _changes(found.answers, new)
