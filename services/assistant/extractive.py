"""Answers without a language model: the sentences of the best passages that share the most
words with the question, quoted and cited. Plain string work, cheap enough for a worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from contracts.content import Passage
from services.assistant.citations import label

PREAMBLE = (
    "No language model is configured, so this answer quotes the course: the sentences of "
    "its passages closest to your question."
)
NOT_FOUND = (
    "Not found in this course: no passage of its lessons is close enough to your question. "
    "Try other words, or ask your instructor."
)
MAX_SENTENCES = 4
MAX_PER_PASSAGE = 2
MAX_PASSAGES = 3
WORDS_PER_TOKEN = 3

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_WORD = re.compile(r"[^\W_]+(?:[._\-][^\W_]+)*")
_PIECE = re.compile(r"\S+\s*")
# fmt: off
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "should", "so", "that",
    "the", "their", "them", "then", "there", "these", "this", "to", "was", "what", "when",
    "where", "which", "who", "why", "will", "with", "would", "you", "your",
})
# fmt: on


@dataclass(frozen=True)
class Quote:
    source: int  # the citation number: the passage's place in the sources, from 1
    order: int  # the sentence's place in its passage
    text: str


def compose(question: str, passages: list[Passage]) -> str:
    """The extractive answer to ``question`` from ``passages`` (the answer's sources)."""
    quotes = pick(question, passages)
    lines = [f"> {quote.text} [{quote.source}]" for quote in quotes]
    cited = sorted({quote.source for quote in quotes})
    refs = "; ".join(f"[{n}] {label(passages[n - 1])}" for n in cited)
    return "\n\n".join([PREAMBLE, "\n".join(lines), f"Sources: {refs}."])


def pick(question: str, passages: list[Passage]) -> list[Quote]:
    """The best sentences of the first passages, each passage's in their own order."""
    wanted = terms(question)
    quotes: list[Quote] = []
    for number, passage in enumerate(passages[:MAX_PASSAGES], start=1):
        quotes += _best_of(number, passage.text, wanted)
    return quotes[:MAX_SENTENCES]


def _best_of(number: int, text: str, wanted: set[str]) -> list[Quote]:
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    scored = sorted((-len(wanted & terms(s)), order, s) for order, s in enumerate(sentences))
    best = [(order, s) for miss, order, s in scored[:MAX_PER_PASSAGE] if miss < 0]
    if not best and number == 1 and sentences:
        best = [(0, sentences[0])]  # the closest passage shares no word: its opening then
    return [Quote(number, order, s) for order, s in sorted(best)]


def terms(text: str) -> set[str]:
    """The words of ``text`` that carry meaning, lowercased and cut to a rough stem."""
    words = (w.lower() for w in _WORD.findall(text))
    return {_stem(w) for w in words if w not in STOPWORDS}


def _stem(word: str) -> str:
    return word[:6] if len(word) > 6 and word.isalpha() else word


def pieces(text: str, words: int = WORDS_PER_TOKEN) -> Iterator[str]:
    """``text`` in groups of ``words`` words, whitespace kept: joined, they are ``text``."""
    found = _PIECE.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead:
        yield lead
    for start in range(0, len(found), words):
        yield "".join(found[start : start + words])
