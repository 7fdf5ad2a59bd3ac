"""Keyword vectors for hybrid search: BM25 term weights as Qdrant sparse vectors.

A document's vector holds, for each token, BM25's saturated term frequency
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; a query's holds 1.0 per
distinct token. Qdrant multiplies each query term by its IDF (``Modifier.IDF`` on the
sparse vector), so the dot product is the BM25 score. Token indices are a fixed 31-bit
hash (BLAKE2b), identical in every process and on every machine: never Python's ``hash``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator

from qdrant_client import models

K1 = 1.2
B = 0.75
# Tokens in a typical chunk (~800 characters of prose, identifiers counted with their parts).
AVG_DOC_LEN = 150.0
MAX_TOKEN_CHARS = 80

# A word, or an identifier whose alphanumeric runs are joined by '.', '_' or '-'
# (asn1_parse_file, ASN.1, os.path.join, utf-8).
_WORD = re.compile(r"[^\W_]+(?:[._\-]+[^\W_]+)*")
_PART = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"(?<=[^\W_])(?<![A-Z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def tokens(text: str) -> list[str]:
    """Lowercased tokens of ``text``: each word, each joined identifier as a whole and
    each of its parts (camelCase parts too), in order, repeats kept."""
    return [token for word in _WORD.findall(text) for token in _word_tokens(word)]


def _word_tokens(word: str) -> Iterator[str]:
    parts = [piece for part in _PART.findall(word) for piece in _CAMEL.split(part)]
    lowered = word.lower()
    if len(parts) > 1 and len(lowered) <= MAX_TOKEN_CHARS:
        yield lowered
    for part in parts:
        if len(part) <= MAX_TOKEN_CHARS:
            yield part.lower()


def token_index(token: str) -> int:
    """The token's sparse dimension: the first 31 bits of its BLAKE2b digest."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


class SparseEncoder:
    """Encodes documents (BM25 term-frequency weights) and queries (1.0 per term)."""

    def __init__(self, *, k1: float = K1, b: float = B, avg_len: float = AVG_DOC_LEN) -> None:
        self.k1 = k1
        self.b = b
        self.avg_len = avg_len

    def encode_document(self, text: str) -> models.SparseVector:
        found = tokens(text)
        norm = self.k1 * (1 - self.b + self.b * len(found) / self.avg_len)
        counts = _index_counts(found)
        return _vector({i: tf * (self.k1 + 1) / (tf + norm) for i, tf in counts.items()})

    def encode_query(self, text: str) -> models.SparseVector:
        return _vector(dict.fromkeys(_index_counts(tokens(text)), 1.0))


def _index_counts(found: list[str]) -> Counter[int]:
    return Counter(token_index(token) for token in found)


def _vector(weights: dict[int, float]) -> models.SparseVector:
    indices = sorted(weights)
    return models.SparseVector(indices=indices, values=[weights[i] for i in indices])
