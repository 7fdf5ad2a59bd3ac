"""Splits a lesson's sections into overlapping chunks for embedding, keeping offsets for citations.

Chunk offsets point into the lesson's full text, :func:`join_sections` (the sections' texts
joined by a blank line): ``full_text[chunk.start:chunk.end] == chunk.text``. Chunks never start
or end with whitespace. The defaults suit all-MiniLM-L6-v2, whose input is truncated at 256
word pieces (about 1000 characters of English): 800 characters leave a comfortable margin.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from mesh.documents import Section

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_SIZE",
    "SECTION_SEPARATOR",
    "Chunk",
    "chunk_sections",
    "join_sections",
]

DEFAULT_SIZE = 800
DEFAULT_OVERLAP = 120
SECTION_SEPARATOR = "\n\n"

# Each pattern's match ends where a chunk may end, strongest boundary first.
_PARAGRAPH = re.compile(r"\S(?=[^\S\n]*\n\s*\n)")
_SENTENCE = re.compile(r"[.!?\u2026][\"')\]\u00bb\u201d\u2019]*(?=\s)")
_LINE = re.compile(r"\S(?=[^\S\n]*\n)")
_WORD_END = re.compile(r"\S(?=\s)")
_WORD_START = re.compile(r"(?<=\s)\S")
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a lesson's text: ``index`` within the lesson, character offsets, locator."""

    index: int
    text: str
    start: int
    end: int
    locator: str | None


def join_sections(sections: Sequence[Section]) -> str:
    """The lesson's full text, which chunk offsets point into."""
    return SECTION_SEPARATOR.join(section.text for section in sections)


def chunk_sections(
    sections: Sequence[Section], *, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """Cut the sections' text into chunks of at most ``size`` characters.

    Cuts at a paragraph break, else a sentence end, else a line break (each only in the second
    half of the window), else a word end; inside a word only when one is longer than ``size``.
    Each chunk starts at a word about ``overlap`` characters before the previous one ends, and
    takes the locator of the section it starts in. Deterministic; blank input gives no chunks.
    """
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got {size=}, {overlap=}")
    text = join_sections(sections)
    starts = list(accumulate((len(s.text) + len(SECTION_SEPARATOR) for s in sections), initial=0))
    return [
        Chunk(index, text[start:end], start, end, sections[bisect_right(starts, start) - 1].locator)
        for index, (start, end) in enumerate(_spans(text, size, overlap))
    ]


def _spans(text: str, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    first = _NON_SPACE.search(text)
    if first is None:
        return
    pos, stop = first.start(), len(text.rstrip())
    while True:
        end, inside_word = _cut(text, pos, size, stop)
        yield pos, end
        if end >= stop:
            return
        pos = _next_start(text, pos, end, overlap, inside_word)


def _cut(text: str, pos: int, size: int, stop: int) -> tuple[int, bool]:
    """Where the chunk starting at ``pos`` ends, and whether that is inside a word."""
    if stop - pos <= size:
        return stop, False
    window = text[pos : pos + size + 1]  # one more character: is the window's end a boundary?
    half = size // 2
    for pattern, floor in ((_PARAGRAPH, half), (_SENTENCE, half), (_LINE, half), (_WORD_END, 1)):
        cut = _last_end(pattern, window)
        if cut >= floor:
            return pos + cut, False
    return pos + size, True


def _last_end(pattern: re.Pattern[str], window: str) -> int:
    last = -1
    for match in pattern.finditer(window):
        last = match.end()
    return last


def _next_start(text: str, pos: int, end: int, overlap: int, inside_word: bool) -> int:
    """The first word start in the last ``overlap`` characters, else the next word."""
    low = max(end - overlap, pos + 1)
    if inside_word:
        return low
    word = _WORD_START.search(text, low, end)
    if word is not None:
        return word.start()
    following = _NON_SPACE.search(text, end)
    assert following is not None  # end < stop, the last non-space character
    return following.start()
