"""Entry module of the Dramatiq workers: ``dramatiq services.workers``.

Importing this module is what configures the broker and registers the actors;
it is the one module with that side effect, because the dramatiq CLI works by import.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from contracts.courses import PIPELINE_QUEUE, PUBLISH_ACTOR
from contracts.notifications import EMAIL_QUEUE, SEND_EMAIL_ACTOR
from mesh import failures, orphans, tracing
from mesh.actor_metrics import ActorMetrics
from mesh.logging import configure_logging
from mesh.settings import get_settings
from mesh.tasks import make_broker
from services.courses import actors as courses_actors
from services.notifications import actors


def setup() -> dramatiq.Broker:
    """Configure logging and the broker, and register every service's actors on it."""
    settings = get_settings()
    configure_logging(settings.log_level)
    tracing.setup("workers", settings)
    broker = make_broker(settings)
    broker.add_middleware(orphans.DieWithMaster())  # no worker outlives a killed master
    broker.add_middleware(ActorMetrics())  # after Retries: it sees a message's retries so far
    broker.add_middleware(CurrentMessage())  # the publishing job's runner is its message
    publish_course = courses_actors.PublishCourse()
    broker.add_middleware(courses_actors.WarmUp(publish_course))
    actors.add_outcome(broker)  # a given-up e-mail shows "failed"
    dramatiq.set_broker(broker)
    dramatiq.actor(
        broker=broker,
        actor_name=SEND_EMAIL_ACTOR,
        queue_name=EMAIL_QUEUE,
        **failures.task_retry_options(
            settings.email_retry_budget_seconds,
            settings.email_retry_min_ms,
            settings.email_retry_max_ms,
            other_retries=settings.event_max_attempts - 1,
            max_retries=settings.email_max_retries,
        ),
    )(actors.send_email)
    dramatiq.actor(
        broker=broker,
        actor_name=PUBLISH_ACTOR,
        queue_name=PIPELINE_QUEUE,
        **courses_actors.OPTIONS,
    )(publish_course)
    return broker


broker = setup()
