"""Uploaded lesson files: checked at the edge, stored content-addressed.

The multipart parser spools a file part to a temporary file, never to memory; from there it
is copied, hashed on the way, into ``<uploads>/<sha256>``. The client's file name is kept for
display only: it never names anything on disk. The bytes decide the kind (``mesh.documents``):
an unsupported kind is 415, a corrupt file 422. Extraction itself is the pipeline's job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from contracts.courses import StoredFile
from contracts.errors import InvalidInput
from mesh.documents import HEAD_SIZE, DocumentError, UnsupportedDocument, check, detect_kind

COPY_CHUNK = 1024 * 1024
FILE_FIELD = "file"
FIELD_MAX = 64 * 1024
"""The largest form field but the file (a title, a position)."""
PARTS_MAX = 16
MEDIA_TYPES = (
    "application/pdf",
    "application/x-subrip",
    "text/vtt",
    "text/html",
    "text/markdown",
    "text/plain",
)
"""The file part's content types the document names, one per kind ``mesh.documents`` reads
(its extension, when it has one, wins over the content type)."""


@dataclass(frozen=True)
class Form:
    """A ``multipart/form-data`` body: its text fields, and its file part."""

    fields: dict[str, str]
    file: FileStorage | None


def read_form(stream: IO[bytes], boundary: str, limit: int) -> Form:
    """Read a multipart body of at most ``limit`` bytes (RequestEntityTooLarge past it;
    ValueError when malformed). The part named ``file`` is the file, spooled to disk, with
    or without a ``filename`` (RFC 7578 makes it optional) and with its own Content-Type;
    every other part is a UTF-8 text field. Werkzeug's own parser would take a part without
    a filename for a text field, and drop its Content-Type."""
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=PARTS_MAX)
    fields: dict[str, str] = {}
    file: FileStorage | None = None
    part: Field | File | None = None
    spool: IO[bytes] | None = None
    text = bytearray()
    read = 0
    while True:
        chunk = stream.read(COPY_CHUNK)
        read += len(chunk)
        if read > limit:
            raise RequestEntityTooLarge()
        decoder.receive_data(chunk or None)
        while not isinstance(event := decoder.next_event(), NeedData):
            if isinstance(event, Epilogue):
                return Form(fields, file)
            if isinstance(event, Field | File):
                part, text = event, bytearray()
                if event.name == FILE_FIELD and file is None:
                    spool = tempfile.SpooledTemporaryFile(max_size=COPY_CHUNK)  # noqa: SIM115
            elif isinstance(event, Data) and part is not None:
                if spool is not None:
                    spool.write(event.data)
                elif len(text) + len(event.data) > FIELD_MAX:
                    raise RequestEntityTooLarge()
                else:
                    text += event.data
                if not event.more_data:
                    if spool is not None:
                        spool.seek(0)
                        filename = part.filename if isinstance(part, File) else None
                        file = FileStorage(spool, filename, FILE_FIELD, headers=part.headers)
                        spool = None
                    else:
                        fields.setdefault(part.name, text.decode("utf-8", "replace"))
        if not chunk:
            raise ValueError("the multipart body ends too soon")


def store_upload(file: FileStorage, folder: Path) -> StoredFile:
    """Check ``file`` and keep it under its SHA-256; the same bytes are stored once."""
    head = file.stream.read(HEAD_SIZE)
    file.stream.seek(0)
    if not head:
        raise InvalidInput("invalid input", [{"field": "file", "message": "the file is empty"}])
    filename = display_name(file.filename)
    try:
        kind = detect_kind(filename, head, file.mimetype or None)
    except UnsupportedDocument as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except DocumentError as exc:
        raise _corrupt(exc) from None
    path, digest, size = _copy_hashed(file.stream, folder)
    try:
        check(path, kind)
    except DocumentError as exc:
        path.unlink(missing_ok=True)  # the same bytes would fail the same way
        raise _corrupt(exc) from None
    return StoredFile(sha256=digest, size=size, kind=kind.value, filename=filename)


def _corrupt(exc: DocumentError) -> InvalidInput:
    return InvalidInput("the file cannot be read", [{"field": "file", "message": str(exc)}])


def display_name(name: str | None) -> str:
    """The client's file name, for people only: its last part, printable, at most 255."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:255]


def _copy_hashed(source: IO[bytes], folder: Path) -> tuple[Path, str, int]:
    """Copy ``source`` into ``folder`` under its SHA-256; (path, digest, size)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as target:
            while chunk := source.read(COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
            target.flush()
            os.fsync(target.fileno())
        final = folder / digest.hexdigest()
        os.replace(tmp, final)  # the same bytes again: the same name, the same content
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return final, digest.hexdigest(), size
