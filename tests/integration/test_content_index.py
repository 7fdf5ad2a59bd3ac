"""The content index for real: local-mode Qdrant on disk and the bundled MiniLM model."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from mesh.embedding import LocalEmbedder
from mesh.settings import Settings
from mesh.vectors import make_qdrant
from services.content.index import Chunk, CollectionMismatch, ContentIndex, Hit, point_id

pytestmark = pytest.mark.integration

COURSE, OTHER_COURSE = 101, 202
QUESTION = "how do I wrap a function to add behaviour"
IDENTIFIER_QUESTION = "which function parses a file of ASN.1 declarations, asn1_parse_file?"

DECORATOR_LESSON = [
    "A decorator is a function that takes a function and returns another one. Writing "
    "@timed above a definition is shorthand for rebinding the name to timed(original).",
    "Inside a decorator you usually define a wrapper that accepts *args and **kwargs, runs "
    "some code before the original call, calls it, and returns its result unchanged.",
    "Use functools.wraps on the wrapper so the decorated function keeps its name, its "
    "docstring and its signature; debuggers and documentation tools rely on them.",
    "Decorators that take arguments need one more level: a factory such as retry(times=3) "
    "returns the actual decorator, which in turn returns the wrapper.",
]
BREAD_LESSON = [
    "Mix five hundred grams of strong flour with ten grams of salt and seven grams of dried "
    "yeast, then pour in three hundred millilitres of warm water.",
    "Knead the dough on a floured surface for ten minutes until it is smooth and springs "
    "back when you press it with a finger.",
    "Leave the dough covered in a warm place for an hour, until it has doubled in size, then "
    "knock it back and shape it into a loaf.",
    "Bake at 220 degrees for thirty minutes; the bread is done when the crust is golden and "
    "the bottom sounds hollow when tapped.",
]
ASN1_LESSON = [
    "ASN.1, Abstract Syntax Notation One, describes data structures independently of how "
    "they travel on the wire. X.509 certificates, LDAP, SNMP and many telecom protocols "
    "are specified with it, so sooner or later most systems programmers meet it.",
    "An ASN.1 module groups type declarations between the keywords BEGIN and END. Each "
    "declaration gives a type a name, and later declarations may refer to earlier ones or "
    "to types imported from other modules with an IMPORTS clause.",
    "The basic types are INTEGER, BOOLEAN, NULL, OCTET STRING, BIT STRING and OBJECT "
    "IDENTIFIER. They map naturally onto C: integers become int64_t by default, and octet "
    "strings become a pointer and a length.",
    "Constructed types combine others: a SEQUENCE is an ordered record, a SET an unordered "
    "one, a CHOICE holds exactly one of its alternatives, and SEQUENCE OF is a list of "
    "values of one type.",
    "Tags tell a decoder which alternative or component it is looking at. With IMPLICIT "
    "tagging the tag replaces the inner one; with EXPLICIT tagging it wraps it, which costs "
    "a few bytes but keeps the original tag visible.",
    "Encoding rules turn abstract values into bytes. BER allows several encodings of the "
    "same value, DER picks exactly one, and PER packs values into bits for constrained "
    "links such as mobile radio signalling.",
    "Certificates are signed over their DER encoding, so two encoders must produce the very "
    "same bytes. That is why our toolkit always re-encodes in DER before hashing and never "
    "signs a BER buffer it received from elsewhere.",
    "The asn1kit toolkit has three parts: a compiler front end that reads schemas, a code "
    "generator that emits C structures, and a small runtime library linked into your "
    "program for encoding and decoding.",
    "The compiler front end reads the text of a schema, tokenises it, and builds a syntax "
    "tree of modules, types and constraints. Parsing stops at the first error and reports "
    "the line and column where the declaration went wrong.",
    "Loading a module from disk is one call: asn1_parse_file(path, &module) returns ASN1_OK "
    "and fills in the module, or an error code with the line number in module->error. "
    "Relative IMPORTS are resolved next to the given path.",
    "When a schema is embedded in the program as a string literal, asn1_parse_string(text, "
    "&module) does the same job from memory, which is handy in unit tests that declare "
    "small types inline.",
    "Every function of the runtime returns an asn1_status code. asn1_strerror turns a code "
    "into a message, and the module or decoder object records extra context such as the "
    "byte offset of a malformed length.",
    "Memory is owned by arenas: a decoded value and everything it points to live in the "
    "arena you passed in, and asn1_arena_free releases them at once, so there is no need to "
    "walk the tree to free nodes one by one.",
    "To decode, hand asn1_decode_der a buffer, its length and the type descriptor generated "
    "for your schema. The result is a typed C structure whose optional fields are pointers "
    "that stay NULL when the component was absent.",
    "Encoding goes the other way: fill in the generated structure and call asn1_encode_der "
    "with an output buffer. If the buffer is too small the call reports the size it needs, "
    "so a second call can succeed.",
    "Object identifiers are sequences of arcs such as 1.2.840.113549. The runtime stores "
    "them compactly and asn1_oid_to_string prints the dotted form used in documentation "
    "and in configuration files.",
    "ASN.1 has many string types. UTF8String accepts any Unicode text, PrintableString a "
    "small ASCII subset, and IA5String plain ASCII; the decoder rejects characters that "
    "the declared type does not allow.",
    "Time values come in two flavours: UTCTime with a two-digit year, which certificates "
    "used until 2049, and GeneralizedTime with four digits and optional fractions of a "
    "second.",
    "Constraints narrow a type: SIZE(1..64) limits the length of a string, and a range such "
    "as INTEGER (0..255) limits values. The generated code checks them after decoding and "
    "before encoding.",
    "An ellipsis in a SEQUENCE marks an extension point. Newer versions of a protocol may "
    "add components after it, and older decoders skip what they do not know instead of "
    "failing.",
    "Test encoders with round trips: encode a value, decode the bytes, and compare. Fuzz the "
    "decoder with libFuzzer on random buffers; most historic ASN.1 vulnerabilities were "
    "decoder bugs on hostile input.",
    "For large messages, the streaming decoder reads from a callback instead of a buffer "
    "and hands out components as they arrive, which keeps memory flat when parsing "
    "multi-megabyte certificate revocation lists.",
    "Never trust a length field: the runtime checks every length against the bytes that "
    "remain and limits nesting depth, because a few crafted bytes can otherwise claim "
    "gigabytes or recurse until the stack overflows.",
    "From the shell, asn1kit-compile schema.asn -o generated/ runs the whole pipeline and "
    "writes one header and one source file per module, ready to be added to your build.",
    "To sum up: declare your types in a module, compile them, then encode and decode with "
    "the generated descriptors, and let DER be the canonical form whenever bytes are signed.",
]


def chunks(lesson_id: int, texts: list[str]) -> list[Chunk]:
    """Chunks of one lesson laid end to end, positions in characters."""
    found, position = [], 0
    for index, text in enumerate(texts):
        found.append(Chunk(lesson_id, index, position, f"§{index + 1}", text))
        position += len(text) + 1
    return found


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    model = LocalEmbedder()
    model.load()
    return model


@pytest.fixture
def client(tmp_path: Path) -> Iterator[QdrantClient]:
    qdrant = QdrantClient(path=str(tmp_path / "qdrant"))
    yield qdrant
    qdrant.close()


@pytest.fixture(params=["per-course", "shared"])
def index(
    client: QdrantClient, embedder: LocalEmbedder, request: pytest.FixtureRequest
) -> ContentIndex:
    """Both layouts: a collection per course (local mode's), one shared (a server's)."""
    content = ContentIndex(client, embedder, per_course=request.param == "per-course")
    content.ensure_collection()
    return content


def add(index: ContentIndex, course_id: int, version: str, lessons: dict[int, list[str]]) -> int:
    """Index whole lessons as the pipeline will: embed in batches, then upsert."""
    added = 0
    for lesson_id, texts in lessons.items():
        lesson = chunks(lesson_id, texts)
        index.upsert(course_id, version, lesson, index.embedder.embed([c.text for c in lesson]))
        added += len(lesson)
    return added


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder
) -> Iterator[ContentIndex]:
    """One course with the three lessons, another with a decorator lesson, built once."""
    qdrant = QdrantClient(path=str(tmp_path_factory.mktemp("library") / "qdrant"))
    content = ContentIndex(qdrant, embedder)
    content.ensure_collection()
    add(content, COURSE, "v1", {1: DECORATOR_LESSON, 2: BREAD_LESSON, 3: ASN1_LESSON})
    add(content, OTHER_COURSE, "v1", {9: DECORATOR_LESSON[:2]})
    yield content
    qdrant.close()


def rank_of(hits: list[Hit], text: str) -> int | None:
    return next((rank for rank, hit in enumerate(hits, 1) if hit.text == text), None)


# ----------------------------------------------------------------- search quality


def test_wrapping_a_function_finds_the_decorator_lesson(library: ContentIndex) -> None:
    hits = library.search(COURSE, QUESTION, limit=5)
    assert hits[0].lesson_id == 1
    assert hits[0].text in DECORATOR_LESSON
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert library.dense_search(COURSE, QUESTION, limit=1)[0].lesson_id == 1


@pytest.mark.parametrize(
    ("question", "target"),
    [(IDENTIFIER_QUESTION, ASN1_LESSON[9]), ("ASN1_OK", ASN1_LESSON[9])],
)
def test_exact_identifier_reaches_the_hybrid_top_three(
    library: ContentIndex, question: str, target: str
) -> None:
    hybrid = library.search(COURSE, question, limit=5)
    keyword = library.keyword_search(COURSE, question, limit=5)
    dense = library.dense_search(COURSE, question, limit=len(ASN1_LESSON))
    print(
        f"\n{question!r}: hybrid rank {rank_of(hybrid, target)}, "
        f"keyword rank {rank_of(keyword, target)}, dense rank {rank_of(dense, target)}"
    )
    assert keyword[0].text == target
    assert (rank_of(hybrid, target) or 99) <= 3


def test_hits_carry_lesson_position_and_locator(library: ContentIndex) -> None:
    hit = library.keyword_search(COURSE, "asn1_parse_file", limit=1)[0]
    expected = chunks(3, ASN1_LESSON)[9]
    assert (hit.lesson_id, hit.position, hit.locator, hit.text) == (
        3,
        expected.position,
        "§10",
        ASN1_LESSON[9],
    )
    assert hit.score > 0


def test_search_stays_inside_the_course(library: ContentIndex) -> None:
    other = {point_id(OTHER_COURSE, 9, i) for i in range(2)}
    for search in (library.search, library.dense_search, library.keyword_search):
        hits = search(COURSE, QUESTION, 50)
        assert {h.lesson_id for h in hits} <= {1, 2, 3}
        assert {h.lesson_id for h in search(OTHER_COURSE, QUESTION, 50)} == {9}
    assert len(other) == 2
    assert library.search(COURSE, "   ") == []
    assert library.search(999, QUESTION) == []


# ----------------------------------------------------------------- lifecycle


def test_upsert_is_idempotent_and_counts_per_course(index: ContentIndex) -> None:
    assert add(index, COURSE, "v1", {1: DECORATOR_LESSON, 2: BREAD_LESSON}) == 8
    add(index, COURSE, "v1", {1: DECORATOR_LESSON, 2: BREAD_LESSON})
    add(index, OTHER_COURSE, "v1", {9: BREAD_LESSON[:1]})
    assert index.count(COURSE) == 8
    assert index.count(OTHER_COURSE) == 1
    index.ensure_collection()  # again: nothing changes
    assert index.count(COURSE) == 8


def test_a_new_version_replaces_the_old_one_cleanly(index: ContentIndex) -> None:
    add(index, COURSE, "v1", {1: DECORATOR_LESSON, 2: BREAD_LESSON})
    add(index, OTHER_COURSE, "v1", {9: BREAD_LESSON})
    # v2 shortens lesson 1 and drops lesson 2.
    add(index, COURSE, "v2", {1: ["Decorators, revised: a wrapper around a function."]})
    assert index.count(COURSE) == 8  # old chunks stay searchable while v2 is written
    index.drop_other_versions(COURSE, keep_version="v2")
    assert index.count(COURSE) == 1
    assert index.count(OTHER_COURSE) == 4
    hits = index.search(COURSE, "bread dough knead", limit=10)
    assert [h.text for h in hits] == ["Decorators, revised: a wrapper around a function."]
    index.drop_course(COURSE)
    assert index.count(COURSE) == 0
    assert index.count(OTHER_COURSE) == 4


def test_upsert_checks_its_arguments(index: ContentIndex) -> None:
    with pytest.raises(ValueError, match="2 chunks but 1 vectors"):
        index.upsert(COURSE, "v1", chunks(1, ["a", "b"]), [[0.0] * 384])
    index.upsert(COURSE, "v1", [], [])
    assert index.count(COURSE) == 0


def test_point_ids_are_stable_uuids() -> None:
    # Derived ids must never change: re-indexing would then duplicate every chunk.
    assert point_id(1, 2, 3) == "356c81f4-cea1-5dae-9e7a-a5d531e64b15"
    assert len({point_id(1, 2, 3), point_id(1, 2, 4), point_id(1, 3, 3), point_id(2, 2, 3)}) == 4


def test_a_collection_of_another_size_is_refused(client: QdrantClient) -> None:
    ContentIndex(client, _FixedSize(768), per_course=False).ensure_collection()
    with pytest.raises(CollectionMismatch, match="size 768"):
        ContentIndex(client, _FixedSize(384), per_course=False).ensure_collection()


def test_a_course_collection_of_another_size_is_refused(client: QdrantClient) -> None:
    chunk = [Chunk(lesson_id=1, index=0, position=0, locator=None, text="x")]
    ContentIndex(client, _FixedSize(768)).upsert(COURSE, "v1", chunk, [[1.0] * 768])
    with pytest.raises(CollectionMismatch, match="size 768"):
        ContentIndex(client, _FixedSize(384)).upsert(COURSE, "v1", chunk, [[1.0] * 384])


class _FixedSize:
    name = "fixed"

    def __init__(self, size: int) -> None:
        self.dimension = size

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * (self.dimension - 1) for _ in texts]


# ----------------------------------------------------------------- local mode


def test_local_mode_persists_and_admits_one_process_only(tmp_path: Path) -> None:
    settings = Settings(mesh_var_dir=tmp_path)
    qdrant = make_qdrant(settings)
    index = ContentIndex(qdrant, _FixedSize(4))
    assert index.is_local
    index.ensure_collection()
    index.upsert(COURSE, "v1", chunks(1, ["one chunk"]), [[1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(RuntimeError, match="already accessed"):
        make_qdrant(settings)
    qdrant.close()
    reopened = make_qdrant(settings)
    assert ContentIndex(reopened, _FixedSize(4)).count(COURSE) == 1
    assert (tmp_path / "qdrant").is_dir()
    reopened.close()


def test_threads_can_share_one_local_index(client: QdrantClient) -> None:
    index = ContentIndex(client, _FixedSize(4))
    index.ensure_collection()
    errors: list[BaseException] = []

    def work(course_id: int) -> None:
        try:
            for round_ in range(10):
                lesson = chunks(course_id, [f"chunk {round_} {i} of {course_id}" for i in range(5)])
                index.upsert(course_id, f"v{round_}", lesson, index.embedder.embed(["x"] * 5))
                index.search(course_id, "chunk of", limit=3)
                index.drop_other_versions(course_id, f"v{round_}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(course,)) for course in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [index.count(course) for course in range(1, 5)] == [5, 5, 5, 5]
