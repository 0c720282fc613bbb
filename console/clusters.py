"""Unanswered questions grouped by meaning, so "37 people asked about 团购" is one row.

Text is normalised (qunzhu.textnorm: traditional → simplified, full-width, mentions), function
words and particles are dropped (怎么, 你们, 吗 …: they make "团购怎么买" look like "兼职怎么申请"),
and each message becomes TF-IDF over its jieba words and character pairs (scikit-learn). Messages
are joined by average-linkage agglomerative clustering (scikit-learn) on cosine distance
with a fixed threshold: no number of clusters to guess, and a question asked once stays
alone. Identical texts are clustered once and counted by weight.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import jieba
import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import TfidfVectorizer

from qunzhu.inbox import Item, topic_text

jieba.setLogLevel(logging.WARNING)

DISTANCE = 0.85  # cosine distance under which two questions are the same topic
MAX_TEXTS = 2000  # distinct texts clustered at once (the distance matrix is n²)
EXAMPLES = 5
def features(text: str) -> list[str]:
    """A message's words (jieba) and character pairs, for TF-IDF."""
    words = [w for w in jieba.lcut(text) if w.strip()]
    pairs = [text[i:i + 2] for i in range(len(text) - 1) if " " not in text[i:i + 2]]
    return words + pairs


@dataclass
class Cluster:
    """Messages about one thing: how many, from how many members, examples, the nearest intent."""

    items: list[Item] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.items)

    @property
    def members(self) -> int:
        return len({(i.group, i.user) for i in self.items})

    @property
    def groups(self) -> list[str]:
        return [g for g, _n in Counter(i.group for i in self.items if i.group).most_common()]

    @property
    def title(self) -> str:
        """The most common wording (the shortest among equals): how members put it."""
        counts = Counter(i.text.strip() for i in self.items)
        return min(counts, key=lambda t: (-counts[t], len(t)))

    @property
    def wordings(self) -> list[str]:
        """Every distinct way members put it, most common first (what can be taught)."""
        counts = Counter(i.text.strip() for i in self.items if i.text.strip())
        return [t for t, _n in counts.most_common(20)]

    @property
    def examples(self) -> list[Item]:
        """The newest messages, one per wording."""
        seen: set[str] = set()
        out = []
        for item in sorted(self.items, key=lambda i: -i.at):
            if item.text not in seen:
                seen.add(item.text)
                out.append(item)
            if len(out) == EXAMPLES:
                break
        return out

    @property
    def closest(self) -> tuple[str, float]:
        """The intent (or faq/<key>) the model most often came closest to, and how often."""
        guesses = Counter(i.closest for i in self.items if i.closest)
        if not guesses:
            return "", 0.0
        name, count = guesses.most_common(1)[0]
        return name, count / self.size

    @property
    def reasons(self) -> list[tuple[str, int]]:
        return Counter(r for i in self.items for r in i.reasons).most_common()

    @property
    def last_at(self) -> float:
        return max(i.at for i in self.items)


def cluster(items: list[Item], distance: float = DISTANCE) -> list[Cluster]:
    """Group items by topic; biggest (by members, then messages) first."""
    by_text: dict[str, list[Item]] = {}
    for item in items:
        # Nothing but emoji, punctuation or particles: no topic; such a message is its own
        # (keyed by its words, marked so it never meets the clustering).
        topic = topic_text(item.text) or f"\0{item.text.strip()}"
        by_text.setdefault(topic, []).append(item)
    ordered = sorted(by_text, key=lambda t: -len(by_text[t]))
    texts, overflow = ordered[:MAX_TEXTS], ordered[MAX_TEXTS:]  # the rarest stay unclustered
    meaningful = [t for t in texts if not t.startswith("\0")]
    labels: dict[str, int] = {}
    if len(meaningful) == 1:
        labels[meaningful[0]] = 0
    elif meaningful:
        matrix = TfidfVectorizer(analyzer=features, sublinear_tf=True).fit_transform(meaningful)
        similarity = (matrix @ matrix.T).toarray()
        found = AgglomerativeClustering(
            n_clusters=None, affinity="precomputed", linkage="average",
            distance_threshold=distance).fit_predict(np.clip(1.0 - similarity, 0.0, 1.0))
        labels = {t: int(label) for t, label in zip(meaningful, found, strict=True)}
    groups: dict[int, Cluster] = {}
    for text in texts + overflow:
        key = labels.get(text, -1 - len(groups))  # no topic, or past MAX_TEXTS: alone
        groups.setdefault(key, Cluster()).items.extend(by_text[text])
    return sorted(groups.values(), key=lambda c: (-c.members, -c.size, -c.last_at))
