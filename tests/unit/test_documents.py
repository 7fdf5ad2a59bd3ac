"""Document detection and extraction, on real files generated here (PDFs by fpdf2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image
from pypdf import PageObject

from mesh.documents import (
    CorruptDocument,
    DocumentError,
    EmptyDocument,
    Kind,
    Section,
    UnsupportedDocument,
    check,
    detect_kind,
    extract,
    normalise,
)

PAGES = [
    "Photosynthesis turns light into chemical energy.",
    "Mitochondria are the powerhouse of the cell.",
    "Ribosomes assemble proteins from amino acids.",
]


def make_pdf(
    pages: list[str | None], owner_password: str | None = None, user_password: str | None = None
) -> bytes:
    """A PDF with one page per entry: the text, or an image only when None; RC4-encrypted."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if owner_password is not None:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    for text in pages:
        pdf.add_page()
        if text is None:
            pdf.image(Image.new("RGB", (40, 30), "navy"), x=20, y=20, w=80)
        else:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


@pytest.fixture
def pdf_path(tmp_path: Path) -> Path:
    path = tmp_path / "lesson.pdf"
    path.write_bytes(make_pdf(list(PAGES)))
    return path


# ----------------------------------------------------------------------------- PDF


def test_pdf_gives_a_section_per_page_with_its_locator(pdf_path: Path) -> None:
    sections = extract(pdf_path, Kind.PDF)

    assert [s.locator for s in sections] == ["page 1", "page 2", "page 3"]
    assert [s.text for s in sections] == PAGES


def test_pdf_from_bytes_equals_pdf_from_path(pdf_path: Path) -> None:
    assert extract(pdf_path.read_bytes(), "pdf") == extract(pdf_path, "pdf")


def test_pdf_pages_without_text_are_skipped_but_keep_numbering() -> None:
    sections = extract(make_pdf([PAGES[0], None, PAGES[2]]), Kind.PDF)

    assert [s.locator for s in sections] == ["page 1", "page 3"]


def test_check_pdf_reads_the_page_count_without_extracting(
    pdf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_extraction(*args: object, **kwargs: object) -> str:
        raise AssertionError("check() must not extract text")

    monkeypatch.setattr(PageObject, "extract_text", no_extraction)

    check(pdf_path, Kind.PDF)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"%PDF-1.7\n" + b"\x8f garbage \x01" * 200, id="garbage"),
        pytest.param(lambda data: b"%PDF-", id="magic-only"),
    ],
)
def test_damaged_pdf_is_corrupt(
    tmp_path: Path, pdf_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(damage(pdf_path.read_bytes()))

    with pytest.raises(CorruptDocument, match="PDF"):
        check(broken, Kind.PDF)
    with pytest.raises(CorruptDocument, match="PDF"):
        extract(broken, Kind.PDF)


def test_password_protected_pdf_is_corrupt_with_a_clear_message() -> None:
    data = make_pdf(list(PAGES), owner_password="owner", user_password="secret")

    with pytest.raises(CorruptDocument, match="encrypted PDF"):
        check(data, Kind.PDF)
    with pytest.raises(CorruptDocument, match="encrypted PDF"):
        extract(data, Kind.PDF)


def test_encrypted_pdf_with_an_empty_user_password_opens() -> None:
    data = make_pdf(list(PAGES), owner_password="owner")

    assert [s.text for s in extract(data, Kind.PDF)] == PAGES


@pytest.mark.parametrize("pages", [[None, None], [""]], ids=["images-only", "blank"])
def test_pdf_without_text_is_empty(tmp_path: Path, pages: list[str | None]) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(pages))

    check(path, Kind.PDF)  # cheap: only the page count
    with pytest.raises(EmptyDocument, match="no text could be extracted"):
        extract(path, Kind.PDF)


# ----------------------------------------------------------------------------- subtitles

SRT = """1
00:00:01,000 --> 00:00:04,000
<i>Welcome</i> to the course.

2
00:00:20,500 --> 00:00:23,000
{\\an8}Today: cells.

3
00:01:10,000 --> 00:01:12,000
A new minute,
on two lines.

4
01:00:05,250 --> 01:00:07,000
One hour in.
"""

VTT = """WEBVTT - lesson one

NOTE this comment is not text

intro
00:00:01.000 --> 00:00:04.000 align:start
<v Ada>Welcome</v> to the <b>course</b>.

00:00:20.500 --> 00:00:23.000
Today: cells.

00:01:10.000 --> 00:01:12.000
A new minute,
on two lines.

01:00:05.250 --> 01:00:07.000
One hour in.
"""

EXPECTED_CUES = [
    Section("Welcome to the course.\nToday: cells.", "00:00:01"),
    Section("A new minute, on two lines.", "00:01:10"),
    Section("One hour in.", "01:00:05"),
]


def test_srt_cues_are_grouped_by_minute_with_start_times(tmp_path: Path) -> None:
    path = tmp_path / "lesson.srt"
    path.write_text(SRT, encoding="utf-8")

    check(path, Kind.SRT)
    assert extract(path, Kind.SRT) == EXPECTED_CUES


def test_vtt_cues_are_grouped_by_minute_with_start_times(tmp_path: Path) -> None:
    path = tmp_path / "lesson.vtt"
    path.write_text(VTT, encoding="utf-8")

    check(path, Kind.VTT)
    assert extract(path, Kind.VTT) == EXPECTED_CUES


def test_vtt_character_references_are_decoded() -> None:
    vtt = "WEBVTT\n\n00:00:05.000 --> 00:00:06.000\n<c.loud>Salt &amp; pepper &lt;3</c>\n"

    assert extract(vtt.encode(), Kind.VTT) == [Section("Salt & pepper <3", "00:00:05")]


def test_long_subtitle_groups_are_split_by_size() -> None:
    cue = "word " * 60  # 300 characters, all within the first minute
    srt_text = "".join(
        f"{n}\n00:00:{n:02d},000 --> 00:00:{n:02d},900\n{cue}\n\n" for n in range(1, 11)
    )

    sections = extract(srt_text.encode(), Kind.SRT)

    assert len(sections) > 1
    assert all(len(s.text) <= 1000 for s in sections)
    assert [s.locator for s in sections][:2] == ["00:00:01", "00:00:04"]


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (Kind.SRT, "this is not a subtitle file"),
        (Kind.SRT, "1\n00:00:01,000 --> soon\nHello\n"),
        (Kind.VTT, "1\n00:00:01,000 --> 00:00:02,000\nno header\n"),
        (Kind.VTT, "WEBVTT\n\n00:00:01.000 --> later\nHello\n"),
    ],
)
def test_unparsable_subtitles_are_corrupt(kind: Kind, text: str) -> None:
    with pytest.raises(CorruptDocument, match="not a valid"):
        check(text.encode(), kind)
    with pytest.raises(CorruptDocument, match="not a valid"):
        extract(text.encode(), kind)


@pytest.mark.parametrize(("kind", "text"), [(Kind.SRT, "\n\n"), (Kind.VTT, "WEBVTT\n\n")])
def test_subtitles_without_cues_are_empty(kind: Kind, text: str) -> None:
    with pytest.raises(EmptyDocument, match="no text could be extracted"):
        extract(text.encode(), kind)


# ----------------------------------------------------------------------------- HTML, Markdown

HTML = """<!DOCTYPE html>
<html><head><title>Cells</title>
<style>p { color: red; }</style><script>var secret = "tracking";</script></head>
<body>
<!-- an HTML comment -->
<p>Before   any <b>heading</b>
   on two lines &amp; an entity.</p>
<h1>Part <em>one</em></h1>
<p>First paragraph.</p><div>Second<br>line</div>
<ul><li>item A</li><li>item B</li></ul>
<h2>Part two</h2><p>Last words.</p>
<noscript>Enable JavaScript</noscript>
</body></html>
"""


def test_html_drops_scripts_and_styles_and_keeps_blocks(tmp_path: Path) -> None:
    path = tmp_path / "lesson.html"
    path.write_text(HTML, encoding="utf-8")

    sections = extract(path, Kind.HTML)

    assert sections == [
        Section("Cells\n\nBefore any heading on two lines & an entity.", None),
        Section("Part one\n\nFirst paragraph.\n\nSecond\nline\n\nitem A\n\nitem B", "Part one"),
        Section("Part two\n\nLast words.", "Part two"),
    ]
    everything = " ".join(s.text for s in sections)
    for dropped in ("color", "secret", "comment", "JavaScript", "<"):
        assert dropped not in everything


MARKDOWN = """Intro with **bold**, _emphasis_ and `code`.

# Getting started

Read the [guide](https://example.com) first.
A soft break, ![a diagram](d.png) and ~~old~~ text.

## Install

- step one
- step *two*

```sh
pip install mesh
```

| Tool | Use |
|------|-----|
| pip  | install |
"""


def test_markdown_keeps_headings_and_text_without_markup() -> None:
    sections = extract(MARKDOWN.encode(), Kind.MARKDOWN)

    assert [s.locator for s in sections] == [None, "Getting started", "Install"]
    assert sections[0].text == "Intro with bold, emphasis and code."
    assert sections[1].text == (
        "Getting started\n\nRead the guide first.\nA soft break, a diagram and old text."
    )
    assert sections[2].text == (
        "Install\n\nstep one\n\nstep two\n\npip install mesh\n\nTool Use\npip install"
    )
    everything = "\n".join(s.text for s in sections)
    for markup in ("**", "#", "`", "[", "](", "~~", "|", "_emphasis_"):
        assert markup not in everything


@pytest.mark.parametrize("kind", [Kind.HTML, Kind.MARKDOWN])
def test_markup_without_text_is_empty(kind: Kind) -> None:
    with pytest.raises(EmptyDocument):
        extract(b"<script>only()</script>\n\n<!-- nothing -->", kind)


# ----------------------------------------------------------------------------- plain text


def test_plain_text_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(
        "\ufeffFirst   line\twith  tabs \r\nsecond\x07 line\r\n\r\n\r\n\r\n"
        "Caf\u00e9 \x00paragraph, a stray NUL in a long enough text is only stripped.\n".encode()
    )

    assert extract(path, Kind.TEXT) == [
        Section(
            "First line with tabs\nsecond line\n\n"
            "Caf\u00e9 paragraph, a stray NUL in a long enough text is only stripped."
        )
    ]


def test_invalid_utf8_text_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="not valid UTF-8"):
        extract("caf\u00e9".encode("latin-1"), Kind.TEXT)
    with pytest.raises(CorruptDocument, match="not valid UTF-8"):
        check(b"ok \xff\xfe broken", Kind.TEXT)


def test_utf16_text_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="binary"):
        extract("hello world".encode("utf-16-le"), Kind.TEXT)


@pytest.mark.parametrize("blank", [b"", b" \n\t\r\n ", b"\xef\xbb\xbf\x00\x07"])
def test_blank_text_is_empty(blank: bytes) -> None:
    with pytest.raises(EmptyDocument, match="no text could be extracted"):
        extract(blank + b" " * 200, Kind.TEXT)


def test_normalise_collapses_spaces_and_keeps_paragraphs() -> None:
    assert normalise("  a \u00a0 b\t\tc \n\n\n\n d\x0ce\x1b\u2028f  ") == "a b c\n\nd\ne\nf"


# ----------------------------------------------------------------------------- detection

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
ZIP = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00"


@pytest.mark.parametrize(
    ("filename", "head", "content_type", "kind"),
    [
        # Magic bytes win over the name and the content type.
        ("notes.txt", b"%PDF-1.7\n%\xe2\xe3", "text/plain", Kind.PDF),
        (None, b"\xef\xbb\xbfWEBVTT\n\n00:00.000 --> 00:01.000", None, Kind.VTT),
        ("captions.srt", b"WEBVTT\r\n\r\n", "application/x-subrip", Kind.VTT),
        # Then the extension (case-insensitive), before the content type.
        ("Lesson.PDF", b"%PDF-1.4", None, Kind.PDF),
        ("cues.srt", b"1\n00:00:01,000 --> 00:00:02,000\nHi", "text/plain", Kind.SRT),
        ("page.htm", b"<p>hi</p>", "text/plain", Kind.HTML),
        ("page.html", b"<p>hi</p>", None, Kind.HTML),
        ("readme.md", b"# Title", "text/plain", Kind.MARKDOWN),
        ("readme.markdown", b"# Title", None, Kind.MARKDOWN),
        ("notes.txt", b"just text", "application/octet-stream", Kind.TEXT),
        # Then the content type (parameters ignored).
        ("upload", b"# Title", "text/markdown; charset=utf-8", Kind.MARKDOWN),
        (None, b"plain words", "Text/Plain", Kind.TEXT),
        ("blob.bin", b"<p>x</p>", "text/html", Kind.HTML),
        (None, b"1\n00:00:01,000 --> 00:00:02,000\n", "application/x-subrip", Kind.SRT),
        # Then a light sniff of HTML and SRT.
        (None, b"  <!DOCTYPE html><html><body>x", None, Kind.HTML),
        ("data.xyz", b"<!-- hi -->\n<html lang=en>", None, Kind.HTML),
        (None, b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHi", None, Kind.SRT),
    ],
)
def test_detect_kind(
    filename: str | None, head: bytes, content_type: str | None, kind: Kind
) -> None:
    assert detect_kind(filename, head, content_type) is kind


@pytest.mark.parametrize(
    ("filename", "head", "content_type"),
    [
        ("picture.png", PNG, "image/png"),
        ("picture.txt", PNG, "text/plain"),  # a renamed image is still an image
        ("fake.pdf", PNG, "application/pdf"),
        ("essay.docx", ZIP, None),
        ("archive.zip", ZIP, "application/zip"),
        ("blob.dat", bytes(range(256)), None),
        ("notes.txt", "hello".encode("utf-16"), "text/plain"),
        ("data.csv", b"a,b,c\n1,2,3\n", "text/csv"),
        (None, b"some words", None),
        (None, b"", None),
    ],
)
def test_detect_unsupported(filename: str | None, head: bytes, content_type: str | None) -> None:
    with pytest.raises(UnsupportedDocument):
        detect_kind(filename, head, content_type)


@pytest.mark.parametrize(
    ("filename", "head", "content_type"),
    [
        ("lesson.pdf", b"just some text", None),
        ("lesson.pdf", b"", "application/pdf"),
        (None, b"<html>", "application/pdf"),
        ("captions.vtt", b"1\n00:00:01,000 --> 00:00:02,000\n", "text/vtt"),
    ],
)
def test_detect_declared_kind_without_its_magic_is_corrupt(
    filename: str | None, head: bytes, content_type: str | None
) -> None:
    with pytest.raises(CorruptDocument, match="does not start with"):
        detect_kind(filename, head, content_type)


# ----------------------------------------------------------------------------- API edges


def test_errors_are_value_errors() -> None:
    for error in (UnsupportedDocument, CorruptDocument, EmptyDocument):
        assert issubclass(error, DocumentError)
    assert issubclass(DocumentError, ValueError)


def test_kind_accepts_plain_strings_and_refuses_unknown_ones() -> None:
    assert extract(b"hello", "text") == [Section("hello")]
    with pytest.raises(UnsupportedDocument, match="docx"):
        extract(b"hello", "docx")


def test_a_str_source_is_ambiguous_and_refused() -> None:
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        extract("notes.txt", Kind.TEXT)  # type: ignore[arg-type]
