"""The BM25 keyword encoder: tokens, stable indices, weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.content.sparse import AVG_DOC_LEN, K1, B, SparseEncoder, token_index, tokens

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call asn1_parse_file()", ["call", "asn1_parse_file", "asn1", "parse", "file"]),
        ("the ASN.1 module", ["the", "asn.1", "asn", "1", "module"]),
        ("foo_bar2 = 3", ["foo_bar2", "foo", "bar2", "3"]),
        ("os.path.join", ["os.path.join", "os", "path", "join"]),
        ("parseFile HTTPServer", ["parsefile", "parse", "file", "httpserver", "http", "server"]),
        ("__init__, end.", ["init", "end"]),
        ("Übergröße straße", ["übergröße", "straße"]),
        ("... --- !!!", []),
    ],
)
def test_tokens_keep_identifiers_whole_and_in_parts(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected


def test_query_and_document_share_identifier_indices() -> None:
    encoder = SparseEncoder()
    document = encoder.encode_document("Load it with asn1_parse_file(path, &module).")
    query = encoder.encode_query("what does asn1_parse_file do")
    assert token_index("asn1_parse_file") in document.indices
    assert token_index("asn1_parse_file") in query.indices


def test_indices_are_pinned_31_bit_values() -> None:
    # Changing the hash would silently break every stored index: these values are forever.
    assert token_index("asn1_parse_file") == 1424841073
    assert token_index("asn.1") == 1611537378
    assert token_index("parse") == 1187170985
    assert all(0 <= token_index(t) < 2**31 for t in tokens("any text at all, 123 x_y"))


def test_indices_do_not_depend_on_the_process_hash_seed() -> None:
    script = (
        "import json; from services.content.sparse import SparseEncoder; "
        "v = SparseEncoder().encode_query('ASN.1 asn1_parse_file straße'); "
        "print(json.dumps(v.indices))"
    )
    seen = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        seen.add(tuple(json.loads(out.stdout)))
    assert len(seen) == 1


def test_query_weights_are_one_per_distinct_token_sorted() -> None:
    vector = SparseEncoder().encode_query("parse the file, parse it")
    assert vector.indices == sorted(vector.indices)
    assert len(vector.indices) == len({"parse", "the", "file", "it"})
    assert vector.values == [1.0] * len(vector.indices)


def test_document_weights_follow_bm25_saturation() -> None:
    words = ["parse"] * 3 + [f"w{i}" for i in range(int(AVG_DOC_LEN) - 3)]
    vector = SparseEncoder().encode_document(" ".join(words))
    weights = dict(zip(vector.indices, vector.values, strict=True))
    # At the average length the norm is k1, so tf=3 weighs 3(k1+1)/(3+k1) and tf=1 weighs 1.
    assert weights[token_index("parse")] == pytest.approx(3 * (K1 + 1) / (3 + K1))
    assert weights[token_index("w0")] == pytest.approx(1.0)
    assert len(vector.indices) == len(vector.values) == len(set(words))


def test_longer_documents_weigh_each_occurrence_less() -> None:
    encoder = SparseEncoder()
    short = encoder.encode_document("parse " + "x " * 10)
    long = encoder.encode_document("parse " + "x " * 400)
    index = token_index("parse")
    short_weight = short.values[short.indices.index(index)]
    long_weight = long.values[long.indices.index(index)]
    assert short_weight > long_weight > 0
    assert short_weight < K1 + 1 and B > 0


def test_empty_text_gives_empty_vectors() -> None:
    encoder = SparseEncoder()
    assert encoder.encode_document("").indices == []
    assert encoder.encode_query("  ?! ").indices == []
