"""Every event type of the mesh and who consumes it."""

from __future__ import annotations

from contracts.base import Event
from contracts.catalog import ProductUpdated
from contracts.courses import CoursePublished, EnrollmentCreated, ProgressUpdated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered

EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    ProductUpdated,
    OrderCreated,
    OrderStatusChanged,
    CoursePublished,
    EnrollmentCreated,
    ProgressUpdated,
)

# (event type) -> the nameko handlers bound to it, as (service, method).
# Publishers declare these queues before they publish, so an event is kept
# even when its consumer has never started. tests/unit/test_topology.py
# checks this table against the handlers the services really declare.
SUBSCRIPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "user.registered": (
        ("notifications", "on_user_registered"),
        ("analytics", "on_user_registered"),
    ),
    "product.updated": (
        ("notifications", "on_product_updated"),
        ("analytics", "on_product_updated"),
    ),
    "order.created": (
        ("notifications", "on_order_created"),
        ("analytics", "on_order_created"),
    ),
    "order.status_changed": (
        ("notifications", "on_order_status_changed"),
        ("catalog", "on_order_status_changed"),
        ("analytics", "on_order_status_changed"),
    ),
    "course.published": (
        ("notifications", "on_course_published"),
        ("analytics", "on_course_published"),
    ),
    "enrollment.created": (
        ("notifications", "on_enrollment_created"),
        ("courses", "on_enrollment_created"),
        ("analytics", "on_enrollment_created"),
    ),
    "progress.updated": (("analytics", "on_progress_updated"),),
}
