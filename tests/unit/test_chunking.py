"""Chunking a lesson's sections: bounds, overlap, offsets, boundaries, locators."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from mesh.chunking import (
    DEFAULT_OVERLAP,
    DEFAULT_SIZE,
    Chunk,
    chunk_sections,
    join_sections,
)
from mesh.documents import Section

WORDS = ["cell", "membrane", "protein", "energy", "nucleus", "enzyme", "the", "a", "of"]


def prose(seed: int, sentences: int) -> str:
    """Deterministic pseudo-English: sentences of 6-20 short words, paragraphs of 2-6."""
    rng = random.Random(seed)
    paragraphs, current = [], []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 20))]
        current.append(" ".join(words).capitalize() + ".")
        if len(current) >= rng.randint(2, 6):
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join([*paragraphs, " ".join(current)]).strip()


@pytest.fixture
def sections() -> list[Section]:
    return [Section(prose(seed, 40), f"page {seed}") for seed in range(1, 4)]


def is_word_boundary(text: str, offset: int) -> bool:
    return offset in (0, len(text)) or text[offset].isspace() or text[offset - 1].isspace()


def test_chunks_are_within_bounds_and_point_at_their_text(sections: list[Section]) -> None:
    full = join_sections(sections)

    chunks = chunk_sections(sections)

    assert len(chunks) > 5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert full[chunk.start : chunk.end] == chunk.text
        assert 0 < len(chunk.text) <= DEFAULT_SIZE
        assert chunk.text == chunk.text.strip()
    assert all(len(c.text) >= DEFAULT_SIZE // 2 for c in chunks[:-1])


def test_chunks_cover_the_text_and_overlap(sections: list[Section]) -> None:
    full = join_sections(sections)

    chunks = chunk_sections(sections, size=300, overlap=60)

    assert chunks[0].start == 0
    assert chunks[-1].end == len(full)
    for previous, current in pairwise(chunks):
        assert previous.start < current.start < previous.end  # progress, and an overlap...
        assert 30 <= previous.end - current.start <= 60  # ...of about `overlap` characters


def test_zero_overlap_leaves_only_whitespace_between_chunks(sections: list[Section]) -> None:
    full = join_sections(sections)

    chunks = chunk_sections(sections, size=250, overlap=0)

    for previous, current in pairwise(chunks):
        assert previous.end < current.start
        assert full[previous.end : current.start].isspace()


def test_cuts_prefer_paragraphs_then_sentences(sections: list[Section]) -> None:
    full = join_sections(sections)

    chunks = chunk_sections(sections, size=400, overlap=50)

    for chunk in chunks[:-1]:
        assert chunk.text.endswith(".")
        assert full[chunk.end : chunk.end + 1].isspace()
    assert any(full[c.end : c.end + 2] == "\n\n" for c in chunks)


def test_words_are_never_cut() -> None:
    text = " ".join(f"word{n:04d}" for n in range(400))  # no sentences, no paragraphs

    chunks = chunk_sections([Section(text)], size=97, overlap=23)

    for chunk in chunks:
        assert is_word_boundary(text, chunk.start)
        assert is_word_boundary(text, chunk.end)
        assert len(chunk.text) <= 97
    assert {w for c in chunks for w in c.text.split()} == set(text.split())


def test_a_word_longer_than_the_size_is_cut_as_a_last_resort() -> None:
    long_word = "x" * 250
    text = f"short {long_word} tail words"

    chunks = chunk_sections([Section(text)], size=100, overlap=20)

    # A cut inside the word only where no whitespace is in reach; overlaps are kept.
    assert [(c.start, c.text) for c in chunks] == [
        (0, "short"),
        (6, "x" * 100),
        (86, "x" * 100),
        (166, "x" * 90 + " tail"),
        (257, "tail words"),
    ]


def test_locator_comes_from_the_section_where_the_chunk_starts() -> None:
    sections = [
        Section(prose(7, 12), "00:00:01"),
        Section(prose(8, 3), "00:01:00"),
        Section(prose(9, 12), None),
    ]
    full = join_sections(sections)
    bounds, offset = [], 0
    for section in sections:
        bounds.append((offset, offset + len(section.text), section.locator))
        offset += len(section.text) + 2

    chunks = chunk_sections(sections, size=200, overlap=40)

    for chunk in chunks:
        [locator] = [loc for lo, hi, loc in bounds if lo <= chunk.start < hi]
        assert chunk.locator == locator
    assert {c.locator for c in chunks} == {"00:00:01", "00:01:00", None}
    assert full.startswith(chunks[0].text)


def test_chunking_is_deterministic(sections: list[Section]) -> None:
    first = chunk_sections(sections, size=321, overlap=45)
    again = chunk_sections([Section(s.text, s.locator) for s in sections], size=321, overlap=45)

    assert first == again


def test_short_text_is_one_chunk_without_surrounding_whitespace() -> None:
    chunks = chunk_sections([Section("  \n"), Section("  A short lesson.  \n"), Section("")])

    assert chunks == [Chunk(0, "A short lesson.", 7, 22, None)]


@pytest.mark.parametrize("sections", [[], [Section("")], [Section(" \n\n\t "), Section("\n")]])
def test_blank_input_gives_no_chunks(sections: list[Section]) -> None:
    assert chunk_sections(sections) == []


@pytest.mark.parametrize(
    ("size", "overlap"),
    [(0, 0), (-5, 0), (100, 100), (100, 150), (100, -1)],
)
def test_arguments_are_validated(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_sections([Section("text")], size=size, overlap=overlap)


def test_defaults_fit_minilm() -> None:
    assert 0 < DEFAULT_OVERLAP < DEFAULT_SIZE <= 900
