"""Normalise Chinese chat text the way WeCom delivers it, before NLU sees it.

WeCom group messages start with ``@<bot name>`` followed by U+2005 (mobile) or a space
(desktop); full-width ``＠`` occurs; zero-width characters survive copy-paste; members type
traditional characters. NLU gets a normalised copy; callers keep the original.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# Zero-width and invisible format characters that carry no meaning in chat text.
# U+200D (zero-width joiner) is kept: it glues emoji sequences such as 👨‍👩‍👧 together.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u2060\ufeff\u180e\u00ad\u202a\u202b\u202c\u202d\u202e")
)
# Separators a client puts after an @-mention: U+2005 (mobile), space, ideographic space, tab.
_MENTION_SEP = "\u2005\u2004\u2006\u00a0\u3000 \t"
_AT = "@＠"
_GENERIC_MENTION = re.compile(f"^[{_AT}][^{_MENTION_SEP}\\n]{{1,32}}[{_MENTION_SEP}]+")
_SPACES = re.compile(r"\s+")

# NLU never needs more than this many characters; longer messages are cut, not rejected.
MAX_NLU_CHARS = 256

# Cantonese members (Hong Kong, Guangdong) write colloquial words Mandarin training data
# never has. After 繁→简 these are rewritten to their Mandarin equivalents, longest first;
# only words and characters that mean nothing else in Mandarin text are listed (唔 alone is
# also Mandarin's "hmm", so only its Cantonese compounds are).
_CANTONESE = (
    ("唔该晒", "谢谢"), ("唔该", "谢谢"), ("多谢晒", "谢谢"), ("系唔系", "是不是"),
    ("系咪", "是不是"), ("唔系", "不是"), ("唔使", "不用"), ("唔好意思", "不好意思"),
    ("唔好", "不要"), ("唔知", "不知道"), ("唔得", "不行"), ("唔想", "不想"), ("唔要", "不要"),
    ("唔会", "不会"), ("唔识", "不会"), ("唔见", "不见"), ("唔可以", "不可以"),
    ("唔明", "不明白"), ("唔紧要", "没关系"),
    ("边度", "哪里"), ("边间", "哪家"),
    ("边个", "谁"), ("几多", "多少"), ("而家", "现在"), ("点样", "怎样"), ("几时", "什么时候"),
    ("收舖", "关门"), ("收铺", "关门"), ("开舖", "开门"), ("开铺", "开门"), ("犀利", "厉害"),
    ("乜嘢", "什么"), ("咩嘢", "什么"), ("咁样", "这样"), ("冇", "没有"),
    ("喺", "在"), ("咗", "了"), ("嘅", "的"), ("哋", "们"), ("佢", "他"), ("睇", "看"),
    ("畀", "给"), ("攞", "拿"), ("嘢", "东西"), ("噉", "这样"), ("啲", "些"),
)

# Number slang sent as a whole message. Rasa's featurisers read every digit run as one
# __NUMBER__ token, so "666" (great), "2333" (laughing) and "88" (bye) would look alike;
# the NLU copy spells out what they mean.
_NUMBER_SLANG = (
    (re.compile(r"^6{3,}$"), "厉害"),
    (re.compile(r"^23{3,}$"), "哈哈哈"),
    (re.compile(r"^8{2,}6?$"), "拜拜"),
)


@lru_cache(maxsize=1)
def _t2s() -> object:
    """Load the OpenCC traditional→simplified converter once (its dictionaries are large)."""
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Convert traditional characters to simplified, leaving everything else as it is."""
    if text.isascii():
        return text
    return str(_t2s().convert(text))  # type: ignore[attr-defined]


def strip_invisible(text: str) -> str:
    """Remove zero-width and bidi control characters but keep the emoji joiner U+200D."""
    return text.translate(_INVISIBLE)


def strip_mentions(text: str, bot_names: Iterable[str] = ()) -> str:
    """Remove the leading @-mention(s) of the bot, and any @bot mention elsewhere in the text."""
    names = sorted({n for n in bot_names if n}, key=len, reverse=True)
    out = text.lstrip(_MENTION_SEP)
    for _ in range(4):  # "@福利官 @福利官 打卡" happens when people tap twice
        if not out or out[0] not in _AT:
            break
        for name in names:
            if out[1 : 1 + len(name)] == name:
                out = out[1 + len(name) :].lstrip(_MENTION_SEP)
                break
        else:
            stripped = _GENERIC_MENTION.sub("", out, count=1)
            if stripped == out:  # "@" with nothing after it, or a mention with no separator
                break
            out = stripped
    for name in names:
        for at in _AT:
            out = out.replace(at + name, " ")
    return out


def normalise(text: str, bot_names: Iterable[str] = ()) -> str:
    """Return the copy of a member's message that NLU should see.

    Strips the bot mention and invisible characters, applies NFKC (full-width ASCII to
    half-width), converts traditional to simplified and colloquial Cantonese to Mandarin,
    folds whitespace, caps the length and spells out number slang sent alone (666, 2333, 88).
    """
    if not text:
        return ""
    out = strip_invisible(text)
    out = strip_mentions(out, bot_names)[: MAX_NLU_CHARS * 2]  # cut before the costly steps
    out = unicodedata.normalize("NFKC", out)
    out = to_simplified(out)
    for cantonese, mandarin in _CANTONESE:
        if cantonese in out:
            out = out.replace(cantonese, mandarin)
    out = _SPACES.sub(" ", out).strip()
    if len(out) > MAX_NLU_CHARS:
        out = out[:MAX_NLU_CHARS]
    for pattern, meaning in _NUMBER_SLANG:
        if pattern.match(out):
            return meaning
    return out


def has_meaningful_text(text: str) -> bool:
    """Tell whether a normalised message has any letter or digit (not only emoji/punctuation)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)
