"""The Dramatiq actor of the courses service: a publishing job, run in the workers process.

``services.workers`` registers it on ``PIPELINE_QUEUE`` with :data:`OPTIONS`. It is the
courses service's own code, so it writes the courses database: the job's progress, and at
the end the course and its ``course.published`` event in the outbox (which the courses
service's relay publishes on its next poll). Adapters (database, MongoDB, the embedder) are
built once per process, on the first job: nothing heavy happens at import.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import CurrentMessage, Middleware

from contracts.content import INDEX_BATCH_MAX, ContentApi
from mesh import failures
from mesh.chunking import chunk_sections
from mesh.clients import make_mongo
from mesh.embedding import make_embedder
from mesh.outbox import OutboxHandle
from mesh.rpc import standalone_client
from mesh.settings import Settings, get_settings
from mesh.sql import make_sessionmaker
from services.courses import pipeline
from services.courses.chunks import MongoChunks
from services.courses.models import outbox

log = logging.getLogger(__name__)

MIN_BACKOFF_MS, MAX_BACKOFF_MS = 1_000, 300_000
RETRY_BUDGET_SECONDS = 3600
"""A job waits out an hour of the content service, MongoDB or the database being down."""
MAX_RETRIES = failures.retries_within(RETRY_BUDGET_SECONDS, MIN_BACKOFF_MS, MAX_BACKOFF_MS)
INDEX_TIMEOUT = 60.0
"""Seconds the content service may take to index a batch (more than a plain RPC_TIMEOUT)."""


def retry_when(retries: int, exc: BaseException) -> bool:
    """Retry a transient failure while retries are left (``retries`` made so far)."""
    return pipeline.should_retry(retries, exc, MAX_RETRIES)


OPTIONS: dict[str, Any] = {
    "max_retries": MAX_RETRIES,  # documents the bound; retry_when is what decides
    "min_backoff": MIN_BACKOFF_MS,
    "max_backoff": MAX_BACKOFF_MS,
    "retry_when": retry_when,
    "throws": pipeline.PERMANENT_ERRORS,  # failed at once, logged as expected
    # Below RabbitMQ's 30-minute consumer timeout; a job cut short resumes on its retry.
    "time_limit": 20 * 60 * 1000,
}
"""The actor's options; needs the CurrentMessage middleware on the broker."""


def _nothing(_session: object) -> None:
    """No relay to wake in this process: the courses service's relay polls the outbox."""


def build_adapters(settings: Settings) -> pipeline.Adapters:
    """The pipeline's adapters from the settings (the embedder loads on its first use)."""
    store = MongoChunks(make_mongo(settings)[settings.mongo_db])
    store.prepare()
    return pipeline.Adapters(
        sessions=make_sessionmaker(settings.sql_url("courses")),
        events=OutboxHandle(outbox, on_commit=_nothing),
        store=store,
        embedder=make_embedder(settings),
        content=functools.partial(
            standalone_client, ContentApi, "content", settings, INDEX_TIMEOUT
        ),
        chunker=chunk_sections,
        uploads=settings.uploads_path,
        batch_size=min(settings.embeddings_batch_size, INDEX_BATCH_MAX),
    )


class PublishCourse:
    """The ``publish_course`` actor: its adapters are built once per process, on the first
    job or by :meth:`warm` when the worker boots, so the first job does not wait for the
    model to load."""

    def __init__(self, build: Callable[[Settings], pipeline.Adapters] = build_adapters) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._adapters: pipeline.Adapters | None = None

    def adapters(self) -> pipeline.Adapters:
        with self._lock:
            if self._adapters is None:
                self._adapters = self._build(get_settings())
            return self._adapters

    def warm(self) -> None:
        """Build the adapters and load the embedder now; a failure waits for the first job."""
        try:
            embedder = self.adapters().embedder
            load = getattr(embedder, "load", None)
            if load is not None:
                load()
        except Exception:
            log.warning("warming the publishing pipeline failed", exc_info=True)

    def __call__(self, job_id: str) -> None:
        """Run (or resume) a publishing job; Dramatiq retries a transient failure."""
        message = CurrentMessage.get_current_message()
        # The message id names the runner: a redelivered or retried message resumes its job.
        runner = message.message_id if message is not None else uuid.uuid4().hex
        retries = int(message.options.get("retries", 0)) if message is not None else MAX_RETRIES
        pipeline.attempt(self.adapters(), job_id, runner, retries, MAX_RETRIES)


class WarmUp(Middleware):
    """Warms the publishing pipeline on a thread of its own once a worker process boots."""

    def __init__(self, publish: PublishCourse) -> None:
        self.publish = publish

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        threading.Thread(target=self.publish.warm, name="warm-pipeline", daemon=True).start()
