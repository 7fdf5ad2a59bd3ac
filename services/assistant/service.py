"""The assistant service: entrypoints only."""

from __future__ import annotations

from contracts.assistant import Answer, AskRequest, Conversation, ConversationSummary, HexId
from contracts.base import Id
from contracts.content import ContentApi
from mesh.providers import CorrelationContext, Mongo, Redis
from mesh.rpc import ServiceClient, rpc
from mesh.service_metrics import ServiceMetrics
from mesh.typed import expose
from services.assistant import logic, store
from services.assistant.provider import AssistantSetup


class AssistantService:
    """Satisfies ``contracts.assistant.AssistantApi``."""

    name = "assistant"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    mongo = Mongo(prepare=store.prepare)
    redis = Redis()
    content = ServiceClient(ContentApi, "content")
    answering = AssistantSetup()

    @rpc
    def ping(self) -> str:
        return self.name

    @expose
    def ask(self, request: AskRequest) -> Answer:
        tools = logic.Tools(self.content, self.mongo, self.redis, self.answering)
        return logic.ask(tools, request)

    @expose
    def list_conversations(self, user_id: Id) -> list[ConversationSummary]:
        return store.list_for(self.mongo, user_id)

    @expose
    def get_conversation(self, conversation_id: HexId, user_id: Id) -> Conversation:
        return store.get(self.mongo, conversation_id, user_id)
