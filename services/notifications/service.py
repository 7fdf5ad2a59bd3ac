"""The notifications service: entrypoints only."""

from __future__ import annotations

from typing import Any

from contracts.base import Viewer, parse_event
from contracts.catalog import CatalogApi, ProductUpdated
from contracts.courses import CoursePublished, CoursesApi, EnrollmentCreated
from contracts.notifications import (
    ListRequest,
    NotificationOut,
    NotificationPage,
    OrderNotificationsRequest,
)
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered, UsersApi
from mesh.events import handle_event
from mesh.providers import CorrelationContext, Mongo
from mesh.rpc import ServiceClient, rpc
from mesh.service_metrics import ServiceMetrics
from mesh.tasks import TaskQueue
from mesh.typed import expose
from services.notifications import logic, messages, recipients
from services.notifications.streams import NotificationStreams


class NotificationsService:
    """Satisfies ``contracts.notifications.NotificationsApi``; handles the domain events."""

    name = "notifications"

    context = CorrelationContext()
    metrics = ServiceMetrics()
    mongo = Mongo(prepare=logic.prepare)
    tasks = TaskQueue()
    streams = NotificationStreams()
    users = ServiceClient(UsersApi, "users")
    catalog = ServiceClient(CatalogApi, "catalog")
    courses = ServiceClient(CoursesApi, "courses")

    @rpc
    def ping(self) -> str:
        return self.name

    @property
    def outlets(self) -> logic.Outlets:
        return logic.Outlets(self.tasks, self.streams)

    @handle_event(UserRegistered)
    def on_user_registered(self, body: Any) -> None:
        event = parse_event(UserRegistered, body)
        # Usually a miss: the user is looked up once here and kept for every later event.
        user = recipients.recipient(self.mongo, self.users, event.user_id)
        logic.record(self.mongo, self.outlets, event, messages.welcome(event, user))

    @handle_event(OrderCreated)
    def on_order_created(self, body: Any) -> None:
        event = parse_event(OrderCreated, body)
        user = recipients.recipient(self.mongo, self.users, event.user_id)
        logic.record(self.mongo, self.outlets, event, messages.order_placed(event, user))

    @handle_event(OrderStatusChanged)
    def on_order_status_changed(self, body: Any) -> None:
        event = parse_event(OrderStatusChanged, body)
        user = recipients.recipient(self.mongo, self.users, event.user_id)
        logic.record(self.mongo, self.outlets, event, messages.order_status(event, user))

    @handle_event(ProductUpdated)
    def on_product_updated(self, body: Any) -> None:
        event = parse_event(ProductUpdated, body)
        messages.notify_wishlisters(self.mongo, self.outlets, self.catalog, self.users, event)

    @handle_event(EnrollmentCreated)
    def on_enrollment_created(self, body: Any) -> None:
        event = parse_event(EnrollmentCreated, body)
        course = self.courses.get_course(event.course_id, Viewer(user_id=event.user_id))
        user = recipients.recipient(self.mongo, self.users, event.user_id)
        logic.record(self.mongo, self.outlets, event, messages.course_welcome(event, course, user))

    @handle_event(CoursePublished)
    def on_course_published(self, body: Any) -> None:
        event = parse_event(CoursePublished, body)
        course = self.courses.get_course(event.course_id, Viewer(user_id=event.instructor_id))
        user = recipients.recipient(self.mongo, self.users, event.instructor_id)
        logic.record(
            self.mongo, self.outlets, event, messages.course_published(event, course, user)
        )

    @expose
    def list_for_user(self, request: ListRequest) -> NotificationPage:
        return logic.list_for_user(self.mongo, request)

    @expose
    def get_notifications(self, request: OrderNotificationsRequest) -> list[NotificationOut]:
        return logic.for_order(self.mongo, request)
