"""The content service: entrypoints only. It owns the search index of course content."""

from __future__ import annotations

from contracts.base import Id
from contracts.content import IndexBatch, Passage, SearchRequest, Version
from mesh.providers import CorrelationContext
from mesh.rpc import rpc
from mesh.service_metrics import ServiceMetrics
from mesh.typed import expose
from services.content import search
from services.content.provider import SearchIndex


class ContentService:
    """Satisfies ``contracts.content.ContentApi``."""

    name = "content"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    chunks = SearchIndex()

    @rpc
    def ping(self) -> str:
        return self.name

    @expose
    def search(self, request: SearchRequest) -> list[Passage]:
        return search.search(self.chunks, request)

    @expose
    def index(self, batch: IndexBatch) -> int:
        return search.store(self.chunks, batch)

    @expose
    def activate(self, course_id: Id, version: Version) -> int:
        return search.activate(self.chunks, course_id, version)

    @expose
    def count(self, course_id: Id) -> int:
        return self.chunks.count(course_id)
