"""Benchmark: publish a generated course of about 100 pages through the running mesh.

Run with ``make bench-pipeline`` against a mesh started with raised rate limits
(``make stop; make run BENCH=1``). It prints:

- end-to-end seconds, from ``POST /api/courses/{id}/publish`` to the job's 100 %;
- chunks per second through the pipeline, and a raw in-process ``model.encode`` of the same
  chunks at the same batch size, side by side, with their ratio;
- search latency p50 and p99 at 1 and 8 clients.
"""

from __future__ import annotations

import argparse
import http.client
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit

import requests
from fpdf import FPDF

from mesh.chunking import chunk_sections
from mesh.documents import Kind, extract
from mesh.embedding import LocalEmbedder
from mesh.settings import get_settings
from tests.bench.common import run_clients

PASSWORD = "bench-password-42"
TOPICS = (
    "decorators wrap a function to add behaviour before and after each call",
    "generators yield values lazily and keep their state between calls",
    "context managers pair setup with teardown through __enter__ and __exit__",
    "descriptors control attribute access on the classes that hold them",
    "asyncio runs coroutines on an event loop that multiplexes input and output",
    "the garbage collector frees reference cycles that counting alone cannot",
)
QUESTIONS = (
    "how do I wrap a function to add behaviour",
    "what keeps state between calls of a lazy sequence",
    "how is teardown guaranteed after setup",
    "who controls attribute access",
    "what runs coroutines",
    "what frees reference cycles",
)


def make_pdf(path: Path, pages: int) -> None:
    """A PDF of ``pages`` pages of plausible prose, each about 2,000 characters."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for page in range(pages):
        pdf.add_page()
        topic = TOPICS[page % len(TOPICS)]
        body = " ".join(
            f"Section {page}.{line}: in Python, {topic}; this paragraph explains it with an "
            f"example numbered {page * 100 + line} and a remark on its cost."
            for line in range(14)
        )
        pdf.multi_cell(0, 5, body)
    pdf.output(str(path))


def session_for(base: str, role: str) -> requests.Session:
    email = f"bench-{role}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Bench", "role": role}
    requests.post(f"{base}/api/auth/register", json=body, timeout=30).raise_for_status()
    login = requests.post(
        f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
    )
    login.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return session


def publish(base: str, teacher: requests.Session, pdf: Path) -> tuple[int, float, dict[str, Any]]:
    """Create a course with the PDF as its one lesson, publish it, wait: (id, seconds, job)."""
    course = teacher.post(f"{base}/api/courses", json={"title": "Bench course"}, timeout=30)
    course.raise_for_status()
    course_id = int(course.json()["id"])
    with pdf.open("rb") as handle:
        lesson = teacher.post(
            f"{base}/api/courses/{course_id}/lessons",
            data={"title": "The manual"},
            files={"file": ("manual.pdf", handle, "application/pdf")},
            timeout=120,
        )
    lesson.raise_for_status()
    started = time.perf_counter()
    job = teacher.post(f"{base}/api/courses/{course_id}/publish", timeout=30)
    job.raise_for_status()
    job_url = f"{base}/api/jobs/{job.json()['id']}"
    while True:
        state = teacher.get(job_url, timeout=30).json()
        if state["status"] in ("succeeded", "failed"):
            return course_id, time.perf_counter() - started, state
        time.sleep(0.1)


def raw_encode(pdf: Path, batch_size: int) -> tuple[int, float]:
    """Chunk the PDF as the pipeline does and encode it in-process: (chunks, seconds)."""
    chunks = chunk_sections(extract(pdf, Kind.PDF))
    model = LocalEmbedder(batch_size=batch_size)
    model.load()
    started = time.perf_counter()
    model.embed([chunk.text for chunk in chunks])
    return len(chunks), time.perf_counter() - started


def search_latency(base: str, token: str, course_id: int, clients: int, n: int) -> str:
    parts = urlsplit(base)

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def one(connection: http.client.HTTPConnection, question: str) -> None:
        query = requests.utils.quote(question)
        connection.request(
            "GET",
            f"/api/courses/{course_id}/search?q={query}&limit=5",
            headers={"Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"search answered {response.status}: {body[:200]!r}")

    jobs = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]
    result = run_clients(f"search, {clients} client(s)", clients, jobs, one, connect)
    return result.line()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    settings = get_settings()
    base = settings.gateway_url
    with TemporaryDirectory() as folder:
        pdf = Path(folder) / "manual.pdf"
        make_pdf(pdf, args.pages)
        size = pdf.stat().st_size
        teacher = session_for(base, "instructor")
        course_id, seconds, job = publish(base, teacher, pdf)
        if job["status"] != "succeeded":
            raise SystemExit(f"the job failed: {job['error']}")
        chunks, raw_seconds = raw_encode(pdf, settings.embeddings_batch_size)
    token = teacher.headers["Authorization"].split()[1]
    pipeline_rate, raw_rate = chunks / seconds, chunks / raw_seconds
    print(f"course of {args.pages} pages, a PDF of {size} bytes")
    print(f"publish end to end           {seconds:8.2f} s   {chunks} chunks")
    print(f"pipeline                     {pipeline_rate:8.1f} chunks/s")
    print(f"raw model.encode (batch {settings.embeddings_batch_size:3d}) {raw_rate:8.1f} chunks/s")
    print(f"ratio pipeline / raw         {pipeline_rate / raw_rate:8.2f}  (target >= 0.9)")
    for clients in (1, 8):
        print(search_latency(base, token, course_id, clients, args.searches))


if __name__ == "__main__":
    main()
