"""Text extraction from lesson documents: PDF, SRT/WebVTT subtitles, HTML, Markdown, plain text.

Pure functions, no I/O besides reading the given file. The content pipeline calls
:func:`detect_kind` and :func:`check` at upload time, and :func:`extract` in a worker.

Detection policy (:func:`detect_kind`): the bytes win over the client's name. A known binary
signature (PNG, JPEG, ZIP/.docx, ...) or more than 1% NUL bytes give
:class:`UnsupportedDocument`; a file *declared* as PDF (``.pdf`` or ``application/pdf``) that
does not start with ``%PDF-``, or as WebVTT without the ``WEBVTT`` header, gives
:class:`CorruptDocument`: the client meant that kind, and what arrived is broken.

Text is normalised: line breaks unified to ``\\n``, control characters (but ``\\n`` and ``\\t``)
removed, runs of horizontal whitespace (tabs included) collapsed to one space, lines stripped,
paragraph breaks kept as one blank line.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path, PurePath
from typing import BinaryIO

import srt
import webvtt
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError
from webvtt.errors import MalformedCaptionError, MalformedFileError

__all__ = [
    "CUE_GROUP_CHARS",
    "CUE_GROUP_SECONDS",
    "HEAD_SIZE",
    "CorruptDocument",
    "DocumentError",
    "EmptyDocument",
    "Kind",
    "Section",
    "Source",
    "UnsupportedDocument",
    "check",
    "detect_kind",
    "extract",
    "normalise",
]

HEAD_SIZE = 1024
"""How many leading bytes :func:`detect_kind` wants to see."""
CUE_GROUP_SECONDS = 60
"""A subtitle section spans at most this many seconds of cue start times..."""
CUE_GROUP_CHARS = 1000
"""...and at most this many characters (a single longer cue stays whole)."""


class Kind(StrEnum):
    """The document kinds we can extract text from."""

    PDF = "pdf"
    SRT = "srt"
    VTT = "vtt"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


class DocumentError(ValueError):
    """A document we cannot turn into text."""


class UnsupportedDocument(DocumentError):
    """Not a kind of document we handle (an image, an archive, an office file...)."""


class CorruptDocument(DocumentError):
    """A supported kind, but broken: truncated, unparsable, undecodable or encrypted."""


class EmptyDocument(DocumentError):
    """A valid document in which no text could be found."""


@dataclass(frozen=True, slots=True)
class Section:
    """A piece of a document's text, with where it comes from (for citations)."""

    text: str
    locator: str | None = None


Source = bytes | Path
"""The document's bytes, or the path of a file on disk."""

# ----------------------------------------------------------------------------- detection

_EXTENSIONS = {
    ".pdf": Kind.PDF,
    ".srt": Kind.SRT,
    ".vtt": Kind.VTT,
    ".html": Kind.HTML,
    ".htm": Kind.HTML,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
    ".txt": Kind.TEXT,
}
_CONTENT_TYPES = {
    "application/pdf": Kind.PDF,
    "application/x-subrip": Kind.SRT,
    "application/srt": Kind.SRT,
    "text/srt": Kind.SRT,
    "text/x-srt": Kind.SRT,
    "text/vtt": Kind.VTT,
    "text/html": Kind.HTML,
    "application/xhtml+xml": Kind.HTML,
    "text/markdown": Kind.MARKDOWN,
    "text/x-markdown": Kind.MARKDOWN,
    "text/plain": Kind.TEXT,
}
_BINARY_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF87a": "a GIF image",
    b"GIF89a": "a GIF image",
    b"PK\x03\x04": "a ZIP archive (or .docx/.pptx/.epub)",
    b"PK\x05\x06": "a ZIP archive",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "a legacy Office document",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf\x27\x1c": "a 7z archive",
    b"Rar!": "a RAR archive",
    b"RIFF": "a RIFF media file",
    b"OggS": "an Ogg media file",
    b"ID3": "an MP3 file",
    b"{\\rtf": "an RTF document",
    b"%!PS": "a PostScript document",
}
_BOM = b"\xef\xbb\xbf"
_WEBVTT_MAGIC = re.compile(rb"WEBVTT(?:[ \t\r\n]|\Z)")
_HTML_SNIFF = re.compile(rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S)
_SRT_SNIFF = re.compile(rb"\s*\d+[ \t]*\r?\n\d+:\d\d:\d\d[,.]\d+[ \t]*-->")


def detect_kind(filename: str | None, head: bytes, content_type: str | None = None) -> Kind:
    """Tell a document's kind from its first bytes (see :data:`HEAD_SIZE`), name and type.

    Magic bytes first, then the extension, then the content type, then a light sniff of
    HTML/SRT text. Raises :class:`UnsupportedDocument` for anything else, and
    :class:`CorruptDocument` for a declared PDF/WebVTT whose bytes are not one.
    """
    body = head.removeprefix(_BOM).lstrip(b" \t\r\n")
    if body.startswith(b"%PDF-"):
        return Kind.PDF
    if _WEBVTT_MAGIC.match(body):
        return Kind.VTT
    _refuse_binary(head)
    declared = _declared_kind(filename, content_type)
    if declared is None:
        return _sniff(body, filename, content_type)
    if declared in (Kind.PDF, Kind.VTT):
        magic = "%PDF-" if declared is Kind.PDF else "WEBVTT"
        raise CorruptDocument(f"declared as {declared.value} but does not start with {magic!r}")
    return declared


def _refuse_binary(head: bytes) -> None:
    for signature, what in _BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise UnsupportedDocument(f"unsupported document: this is {what}")
    if len(head) >= 8 and head[4:8] == b"ftyp":
        raise UnsupportedDocument("unsupported document: this is an MP4/QuickTime media file")
    if _is_binary(head):
        raise UnsupportedDocument("unsupported document: binary data")


def _declared_kind(filename: str | None, content_type: str | None) -> Kind | None:
    suffix = PurePath(filename).suffix.lower() if filename else ""
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return _CONTENT_TYPES.get(media_type)


def _sniff(body: bytes, filename: str | None, content_type: str | None) -> Kind:
    if _HTML_SNIFF.match(body):
        return Kind.HTML
    if _SRT_SNIFF.match(body):
        return Kind.SRT
    raise UnsupportedDocument(
        f"unsupported document (name {filename!r}, content type {content_type!r})"
    )


# ----------------------------------------------------------------------------- public API


def extract(source: Source, kind: Kind | str) -> list[Section]:
    """Extract a document's text as sections, each with a locator for citations.

    ``page N`` for PDF pages, ``HH:MM:SS`` (first cue's start) for subtitle groups, the
    heading for Markdown/HTML sections (``None`` before the first heading), ``None`` for
    plain text. Raises :class:`CorruptDocument` or :class:`EmptyDocument`.
    """
    kind = _kind(kind)
    if kind is Kind.PDF:
        return _extract_pdf(source)
    text = _decode(_read(source))
    sections = _TEXT_EXTRACTORS[kind](text)
    if not sections:
        raise EmptyDocument(f"no text could be extracted from this {kind.value} document")
    return sections


def check(source: Source, kind: Kind | str) -> None:
    """Cheap upload-time validation: open the PDF and count its pages; decode/parse text.

    Does not extract PDF pages, so a scanned PDF passes here and fails in :func:`extract`.
    """
    kind = _kind(kind)
    if kind is Kind.PDF:
        with _binary_stream(source) as stream:
            _page_count(_open_pdf(stream))
        return
    text = _decode(_read(source))
    if kind is Kind.SRT:
        _srt_cues(text)
    elif kind is Kind.VTT:
        _vtt_cues(text)


def normalise(text: str) -> str:
    """Clean extracted text: no control characters, single spaces, one blank line at most."""
    text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    text = _CONTROL.sub("", text)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    return _EXTRA_NEWLINES.sub("\n\n", text).strip()


_LINE_BREAKS = str.maketrans(
    {"\r": "\n", "\v": "\n", "\f": "\n", "\u2028": "\n", "\u2029": "\n\n", "\x85": "\n"}
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff\u200b]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_EXTRA_NEWLINES = re.compile(r"\n{3,}")


def _kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise UnsupportedDocument(f"unsupported document kind {kind!r}") from None


def _read(source: Source) -> bytes:
    if isinstance(source, Path):
        return source.read_bytes()
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    raise TypeError(f"expected bytes or a pathlib.Path, not {type(source).__name__}")


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorruptDocument(f"not valid UTF-8 text (bad byte at offset {exc.start})") from None
    if _is_binary(text):
        raise CorruptDocument("binary data, not text (many NUL characters; UTF-16?)")
    return text


def _is_binary(data: bytes | str) -> bool:
    """More than 1% NULs: binary (or UTF-16). A stray NUL is merely stripped by normalise."""
    nuls = data.count(b"\x00") if isinstance(data, bytes) else data.count("\x00")
    return nuls * 100 > len(data)


# ----------------------------------------------------------------------------- PDF


@contextmanager
def _binary_stream(source: Source) -> Iterator[BinaryIO]:
    """The file opened for pypdf's random access (not read into memory), or the bytes."""
    if isinstance(source, Path):
        with source.open("rb") as stream:
            yield stream
    else:
        yield io.BytesIO(_read(source))


def _open_pdf(stream: BinaryIO) -> PdfReader:
    try:
        reader = PdfReader(stream)
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except DependencyError as exc:  # AES needs the `cryptography` package
        raise CorruptDocument(f"encrypted PDF that cannot be opened here ({exc})") from None
    except Exception as exc:  # pypdf raises many types on malformed input
        raise CorruptDocument(f"corrupt or truncated PDF ({_reason(exc)})") from None
    if locked:
        raise CorruptDocument("encrypted PDF: it needs a password, upload an unprotected copy")
    return reader


def _page_count(reader: PdfReader) -> int:
    try:
        count = len(reader.pages)
    except Exception as exc:
        raise CorruptDocument(f"corrupt PDF: unreadable page tree ({_reason(exc)})") from None
    if count == 0:
        raise EmptyDocument("no text could be extracted: the PDF has no pages")
    return count


def _extract_pdf(source: Source) -> list[Section]:
    with _binary_stream(source) as stream:
        reader = _open_pdf(stream)
        count = _page_count(reader)
        sections = [
            Section(text, f"page {number}")
            for number in range(1, count + 1)
            if (text := _page_text(reader, number))
        ]
    if not sections:
        raise EmptyDocument(
            f"no text could be extracted from this PDF ({count} pages; scanned images only?)"
        )
    return sections


def _page_text(reader: PdfReader, number: int) -> str:
    try:
        return normalise(reader.pages[number - 1].extract_text())
    except Exception as exc:
        raise CorruptDocument(f"corrupt PDF: page {number} unreadable ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    """The exception's type and a bounded message (some libraries quote the whole input)."""
    message = str(exc)
    message = f"{message[:150]}..." if len(message) > 150 else message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# ----------------------------------------------------------------------------- subtitles

_CUE_MARKUP = re.compile(r"<[^>\n]*>|\{\\[^}\n]*\}")


def _extract_srt(text: str) -> list[Section]:
    return _group_cues(_srt_cues(text))


def _extract_vtt(text: str) -> list[Section]:
    return _group_cues(_vtt_cues(text))


def _srt_cues(text: str) -> list[tuple[timedelta, str]]:
    try:
        return [(cue.start, _CUE_MARKUP.sub("", cue.content)) for cue in srt.parse(text)]
    except srt.SRTParseError as exc:
        where = f"character {exc.expected_start}: {exc.unmatched_content[:40]!r}"
        raise CorruptDocument(f"not a valid SRT subtitle file (unparsable at {where})") from None
    except ValueError as exc:
        raise CorruptDocument(f"not a valid SRT subtitle file ({_reason(exc)})") from None


def _vtt_cues(text: str) -> list[tuple[timedelta, str]]:
    """Lenient parse (sloppy files are common); strict only to explain why nothing parsed."""
    captions = _parse_vtt(text, strict=False) or _parse_vtt(text, strict=True)
    # webvtt-py strips cue tags but leaves character references (&amp;) escaped.
    return [(timedelta(seconds=c.start_in_seconds), html.unescape(c.text)) for c in captions]


def _parse_vtt(text: str, *, strict: bool) -> list[webvtt.Caption]:
    try:
        return webvtt.WebVTT.from_string(text, strict=strict).captions
    except MalformedFileError:
        raise CorruptDocument("not a valid WebVTT subtitle file (no 'WEBVTT' header)") from None
    except (MalformedCaptionError, ValueError) as exc:
        raise CorruptDocument(f"not a valid WebVTT subtitle file ({_reason(exc)})") from None


def _group_cues(cues: Iterable[tuple[timedelta, str]]) -> list[Section]:
    """Consecutive cues, one per line, in sections of ~a minute or ~a thousand characters."""
    groups: list[tuple[timedelta, list[str]]] = []
    size = 0
    for start, raw in cues:
        line = normalise(raw).replace("\n", " ")
        if not line:
            continue
        if not groups or start - groups[-1][0] >= _GROUP_SPAN or size + len(line) > CUE_GROUP_CHARS:
            groups.append((start, []))
            size = 0
        groups[-1][1].append(line)
        size += len(line) + 1
    return [Section("\n".join(lines), _timestamp(start)) for start, lines in groups]


_GROUP_SPAN = timedelta(seconds=CUE_GROUP_SECONDS)


def _timestamp(offset: timedelta) -> str:
    seconds = max(int(offset.total_seconds()), 0)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------- HTML, Markdown

_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_DROPPED = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"]
_BLOCKS = [
    *["address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl"],
    *["dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li"],
    *["main", "nav", "ol", "p", "pre", "section", "summary", "table", "title", "tr", "ul"],
]
# Private-use sentinels marking structure through get_text() and the whitespace collapse.
_PARA, _LINE, _HEAD_START, _HEAD_END = "\ue000", "\ue001", "\ue002", "\ue003"
_SENTINELS = str.maketrans(dict.fromkeys(map(ord, _PARA + _LINE + _HEAD_START + _HEAD_END)))
_HEADING_SPLIT = re.compile(f"{_HEAD_START}(.*?){_HEAD_END}", re.S)


def _extract_html(text: str) -> list[Section]:
    soup = BeautifulSoup(text.translate(_SENTINELS), "html.parser")
    for tag in soup.find_all(_DROPPED):
        tag.decompose()
    for pre in soup.find_all("pre"):
        pre.string = pre.get_text().replace("\n", _LINE)
    for br in soup.find_all("br"):
        br.replace_with(_LINE)
    for heading in soup.find_all(_HEADINGS):
        heading.insert_before(_HEAD_START)
        heading.insert_after(_HEAD_END)
    for block in soup.find_all(_BLOCKS):
        block.insert_before(_PARA)
        block.insert_after(_PARA)
    flat = re.sub(r"\s+", " ", soup.get_text()).replace(_PARA, "\n\n").replace(_LINE, "\n")
    parts = _HEADING_SPLIT.split(flat)
    return _sections([(None, parts[0]), *zip(parts[1::2], parts[2::2], strict=True)])


def _sections(parts: Iterable[tuple[str | None, str]]) -> list[Section]:
    """Sections from (heading, body) pairs; the heading starts the section's text."""
    sections = []
    for heading, body in parts:
        title = " ".join(normalise(heading).split()) if heading else ""
        text = normalise(f"{title}\n\n{body}")
        if text:
            sections.append(Section(text, title or None))
    return sections


_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_BLOCK_ENDS = {"paragraph_close", "heading_close", "blockquote_close"}


def _extract_markdown(text: str) -> list[Section]:
    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    tokens = _MARKDOWN.parse(text)
    for previous, token in zip([None, *tokens], tokens, strict=False):
        if previous is not None and previous.type == "heading_open":
            parts.append((_inline_text(token.children or []), []))
        else:
            parts[-1][1].append(_block_text(token))
    return _sections((heading, "".join(pieces)) for heading, pieces in parts)


def _block_text(token: Token) -> str:
    if token.type == "inline":
        return _inline_text(token.children or [])
    if token.type in ("fence", "code_block"):
        return f"\n\n{token.content}\n\n"
    if token.type == "html_block":
        return f"\n\n{BeautifulSoup(token.content, 'html.parser').get_text(' ')}\n\n"
    if token.type in ("th_close", "td_close"):
        return " "
    if token.type == "tr_close":
        return "\n"
    return "\n\n" if token.type in _BLOCK_ENDS else ""


def _inline_text(children: list[Token]) -> str:
    pieces = []
    for child in children:
        if child.type in ("text", "text_special", "code_inline", "image"):
            pieces.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            pieces.append("\n")
    return "".join(pieces)


# ----------------------------------------------------------------------------- plain text


def _extract_text(text: str) -> list[Section]:
    cleaned = normalise(text)
    return [Section(cleaned)] if cleaned else []


_TEXT_EXTRACTORS = {
    Kind.SRT: _extract_srt,
    Kind.VTT: _extract_vtt,
    Kind.HTML: _extract_html,
    Kind.MARKDOWN: _extract_markdown,
    Kind.TEXT: _extract_text,
}
