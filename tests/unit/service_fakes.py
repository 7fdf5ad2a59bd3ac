"""In-memory fakes of the services, each implementing its contracts Protocol.

A fake takes and returns the contract models, validates its arguments as the real entrypoint
does (``mesh.typed``: wire data becomes models, a bad argument is InvalidInput naming it), and
promises what the real service promises, no more: tests/unit/test_service_contracts.py (and
tests/integration/test_notifications_contract.py, tests/integration/test_assistant_contract.py)
run the same checks on a fake and on the real service. :class:`LocalTransport` calls either kind
through JSON, as nameko RPC does.

Where a service's logic is plain functions of contract models (the assistant's retrieval,
extractive answers and event relay; the analytics' day of an event), the fake calls those very
functions and fakes only the storage around them, so it cannot drift from them.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from nameko.exceptions import deserialize, serialize
from nameko.extensions import DependencyProvider
from openai.types.chat import ChatCompletionMessageParam
from pydantic_core import to_jsonable_python

from contracts.analytics import (
    AnalyticsApi,
    EnrollmentsQuery,
    EnrollmentsRow,
    EventCountsRow,
    OrdersReportQuery,
    OrdersRow,
    ReportQuery,
    SignupsRow,
)
from contracts.assistant import (
    Answer,
    AskRequest,
    AssistantApi,
    Conversation,
    ConversationSummary,
    HexId,
    SourcesEvent,
    Turn,
)
from contracts.base import Event, Id, Viewer, parse_event
from contracts.catalog import (
    CatalogApi,
    FieldChange,
    OrderRef,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
    ProductUpdated,
    Reservation,
    ReserveRequest,
    WishlistersAfter,
    WishlistersLimit,
    WishlistItem,
    WishlistPage,
    WishlistQuery,
)
from contracts.content import (
    ContentApi,
    IndexBatch,
    IndexedChunk,
    Passage,
    SearchRequest,
    Version,
)
from contracts.courses import (
    PUBLISH_STEPS,
    CourseCreate,
    CourseOut,
    CoursePage,
    CoursePatch,
    CoursePublished,
    CourseQuery,
    CoursesApi,
    EnrollmentCreated,
    EnrollmentOut,
    JobId,
    JobOut,
    LessonCreate,
    LessonOut,
    MyCourse,
    ProgressOut,
    ProgressUpdated,
    RecentJobsQuery,
)
from contracts.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    MeshError,
    NotFound,
    Unavailable,
)
from contracts.notifications import (
    EmailStatus,
    ListRequest,
    NotificationOut,
    NotificationPage,
    NotificationsApi,
    OrderNotificationsRequest,
)
from contracts.orders import (
    TRANSITIONS,
    IdempotencyKey,
    OrderCreate,
    OrderCreated,
    OrderOut,
    OrderPage,
    OrderQuery,
    OrderRefs,
    OrderRefState,
    OrdersApi,
    OrderStatusChanged,
    Status,
    StatusChange,
)
from contracts.users import (
    Credentials,
    Email,
    RegisterRequest,
    Role,
    UserIds,
    UserOut,
    UserRegistered,
    UsersApi,
)
from mesh.context import get_correlation_id
from mesh.errors import register_remote_errors
from mesh.typed import shape
from services.analytics.counters import day_of
from services.analytics.models import UNPRICED
from services.assistant import logic as assistant_logic
from services.assistant import store as assistant_store
from services.assistant.extractive import terms
from services.assistant.model import ChatModel, ModelFailed
from services.assistant.stream import events_for
from tests.unit.fake_redis_streams import FakeStreamsRedis

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S")
Clock = Callable[[], datetime]

PASSWORD = "correct horse battery"
"""The password :meth:`FakeUsers.add` gives a user unless told otherwise."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def validated(fn: F) -> F:
    """Validate a fake's arguments against its annotations, as ``mesh.typed.expose`` does."""

    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self, **shape(fn).load_args(args, kwargs))

    return cast(F, method)


# ----------------------------------------------------------------- in-process wiring


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


class LocalTransport:
    """A ``mesh.typed.Transport`` to objects in this process, as nameko RPC would call them.

    Arguments and answers go through JSON; an error goes through nameko's own serialisation,
    so a contracts error arrives as itself and anything else as a ``RemoteError``. A target
    is a nameko service instance (its ``@expose`` entrypoints validate and dump) or a fake.
    """

    def __init__(self, **services: object) -> None:
        register_remote_errors()
        self.services = services

    def call(self, service: str, method: str, *args: Any) -> Any:
        target = getattr(self.services[service], method)
        try:
            answer = target(*_json(list(args)))
        except Exception as exc:
            raise deserialize(_json(serialize(exc))) from exc
        return _json(to_jsonable_python(answer))


def providers(cls: type[Any]) -> set[str]:
    """The names of a nameko service class's dependency providers."""
    return {
        name for name, value in inspect.getmembers(cls) if isinstance(value, DependencyProvider)
    }


def injects(provider: DependencyProvider) -> bool:
    """Whether a worker gets something from ``provider`` (not so for one that only hooks
    the worker's lifecycle, as ``ServiceMetrics`` does: nameko gives the worker None)."""
    return type(provider).get_dependency is not DependencyProvider.get_dependency


def wired(cls: type[S], **dependencies: Any) -> S:
    """An instance of a nameko service class, every dependency given by hand (no container);
    a provider that injects nothing is None unless given."""
    hooks_only = {name for name in providers(cls) if not injects(getattr(cls, name))}
    dependencies = {**dict.fromkeys(hooks_only), **dependencies}
    missing = providers(cls) - dependencies.keys()
    assert not missing, f"{cls.__name__} needs {sorted(missing)}"
    service = cls()
    for name, value in dependencies.items():
        assert hasattr(cls, name), f"{cls.__name__} has no {name}"
        setattr(service, name, value)
    return service


# ----------------------------------------------------------------- users


class FakeUsers(UsersApi):
    """The users service in memory; passwords are kept in clear so ``authenticate`` works."""

    def __init__(self, now: Clock = utcnow) -> None:
        self.now = now
        self.users: dict[int, UserOut] = {}
        self.passwords: dict[int, str] = {}
        self.events: list[Event] = []
        self._ids = itertools.count(1)

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "users"

    def add(
        self,
        email: str = "ada@example.com",
        *,
        name: str = "Ada",
        password: str = PASSWORD,
        role: Role = "student",
        is_admin: bool = False,
    ) -> UserOut:
        """Register a user (the contract applies), and make it an administrator if asked."""
        request = RegisterRequest(email=email, password=password, name=name, role=role)
        user = self.register(request)
        return self.promote_admin(user.email) if is_admin else user

    def _by_email(self, email: str) -> UserOut | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if u.email == wanted), None)

    @validated
    def register(self, request: RegisterRequest) -> UserOut:
        if self._by_email(request.email) is not None:
            raise Conflict("e-mail already registered")
        user_id = next(self._ids)
        user = UserOut(
            id=user_id,
            email=request.email,
            name=request.name,
            role=request.role,
            created_at=self.now(),
        )
        self.users[user_id] = user
        self.passwords[user_id] = request.password
        self.events.append(UserRegistered(user_id=user_id))
        return user

    @validated
    def authenticate(self, credentials: Credentials) -> UserOut:
        user = self._by_email(credentials.email)
        if user is None or self.passwords[user.id] != credentials.password:
            raise AuthenticationFailed("invalid e-mail or password")
        return user

    @validated
    def get_user(self, user_id: Id) -> UserOut:
        if user_id not in self.users:
            raise NotFound("user not found")
        return self.users[user_id]

    @validated
    def get_users(self, user_ids: UserIds) -> list[UserOut]:
        return [self.users[i] for i in dict.fromkeys(user_ids) if i in self.users]

    @validated
    def promote_admin(self, email: Email) -> UserOut:
        user = self._by_email(email)
        if user is None:
            raise NotFound("user not found")
        self.users[user.id] = user.model_copy(update={"is_admin": True})
        return self.users[user.id]


# ----------------------------------------------------------------- catalog


@dataclass(frozen=True)
class WishlistEntry:
    user_id: int
    product_id: int
    added_at: datetime
    seq: int  # orders entries added at the same instant, as the real table's id does


def _stock_changed(product_id: int, old: int, new: int) -> ProductUpdated:
    changes = {"stock": FieldChange(old=old, new=new)}
    return ProductUpdated(product_id=product_id, change="updated", changes=changes)


class FakeCatalog(CatalogApi):
    """The catalog service in memory: soft deletes, wishlists, reservations by order_ref."""

    def __init__(self, now: Clock = utcnow) -> None:
        self.now = now
        self.products: dict[int, ProductOut] = {}
        self.deleted: set[int] = set()
        self.wishlist: list[WishlistEntry] = []
        self.reservations: dict[str, Reservation] = {}
        self.released: set[str] = set()
        self.events: list[Event] = []
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "catalog"

    def add(
        self, name: str = "Lamp", price_cents: int = 1999, stock: int = 5, **fields: Any
    ) -> ProductOut:
        """Create a product (``description``, ``currency`` as keywords)."""
        request = ProductCreate(name=name, price_cents=price_cents, stock=stock, **fields)
        return self.create_product(request)

    def _live(self, product_id: int) -> ProductOut:
        product = self.products.get(product_id)
        if product is None or product_id in self.deleted:
            raise NotFound("product not found")
        return product

    def _store(self, product: ProductOut, **values: Any) -> ProductOut:
        self.products[product.id] = product.model_copy(update={**values, "updated_at": self.now()})
        return self.products[product.id]

    # products

    @validated
    def list_products(self, query: ProductQuery) -> ProductPage:
        q = (query.q or "").lower()
        found = [
            product
            for product_id, product in sorted(self.products.items())
            if product_id not in self.deleted
            and (q in product.name.lower() or q in product.description.lower())
        ]
        items = found[query.offset : query.offset + query.limit]
        return ProductPage(items=items, total=len(found), limit=query.limit, offset=query.offset)

    @validated
    def get_product(self, product_id: Id) -> ProductOut:
        return self._live(product_id)

    @validated
    def create_product(self, product: ProductCreate) -> ProductOut:
        values = product.model_dump()
        now = self.now()
        out = ProductOut(id=next(self._ids), **values, created_at=now, updated_at=now)
        self.products[out.id] = out
        changes = {field: FieldChange(old=None, new=new) for field, new in values.items()}
        self.events.append(ProductUpdated(product_id=out.id, change="created", changes=changes))
        return out

    @validated
    def update_product(self, product_id: Id, patch: ProductPatch) -> ProductOut:
        product = self._live(product_id)
        changes = {
            field: FieldChange(old=getattr(product, field), new=getattr(patch, field))
            for field in patch.model_fields_set
            if getattr(product, field) != getattr(patch, field)
        }
        if not changes:
            return product
        self.events.append(ProductUpdated(product_id=product.id, change="updated", changes=changes))
        return self._store(product, **{field: c.new for field, c in changes.items()})

    @validated
    def delete_product(self, product_id: Id) -> None:
        self._store(self._live(product_id))
        self.deleted.add(product_id)
        self.events.append(ProductUpdated(product_id=product_id, change="deleted"))

    # wishlists

    def _entry(self, user_id: int, product_id: int) -> WishlistEntry | None:
        pair = (user_id, product_id)
        return next((e for e in self.wishlist if (e.user_id, e.product_id) == pair), None)

    @validated
    def wishlist_list(self, user_id: Id, query: WishlistQuery) -> WishlistPage:
        entries = [
            e for e in self.wishlist if e.user_id == user_id and e.product_id not in self.deleted
        ]
        entries.sort(key=lambda e: (e.added_at, e.seq), reverse=True)
        end = query.offset + query.limit
        items = [
            WishlistItem(product=self.products[e.product_id], added_at=e.added_at) for e in entries
        ]
        more = len(entries) > end
        return WishlistPage(
            items=items[query.offset : end],
            limit=query.limit,
            offset=query.offset,
            next_offset=end if more else None,
        )

    @validated
    def wishlist_add(self, user_id: Id, product_id: Id) -> WishlistItem:
        product = self._live(product_id)
        entry = self._entry(user_id, product_id)
        if entry is None:
            entry = WishlistEntry(user_id, product_id, self.now(), next(self._seq))
            self.wishlist.append(entry)
        return WishlistItem(product=product, added_at=entry.added_at)

    @validated
    def wishlist_remove(self, user_id: Id, product_id: Id) -> None:
        pair = (user_id, product_id)
        self.wishlist = [e for e in self.wishlist if (e.user_id, e.product_id) != pair]

    @validated
    def wishlisted_by(
        self, product_id: Id, after: WishlistersAfter = 0, limit: WishlistersLimit = 1000
    ) -> list[int]:
        ids = sorted(e.user_id for e in self.wishlist if e.product_id == product_id)
        return [i for i in ids if i > after][:limit]

    # stock

    @validated
    def reserve_stock(self, request: ReserveRequest) -> Reservation:
        held = self.reservations.get(request.order_ref)
        if held is not None:
            return self._existing(held, request)
        product = self._live(request.product_id)
        if product.stock < request.quantity:
            raise Conflict("not enough stock")
        self._store(product, stock=product.stock - request.quantity)
        reservation = Reservation(
            order_ref=request.order_ref,
            product_id=product.id,
            quantity=request.quantity,
            unit_price_cents=product.price_cents,
            currency=product.currency,
        )
        self.reservations[request.order_ref] = reservation
        self.events.append(
            _stock_changed(product.id, product.stock, self.products[product.id].stock)
        )
        return reservation

    def _existing(self, held: Reservation, request: ReserveRequest) -> Reservation:
        if (held.product_id, held.quantity) != (request.product_id, request.quantity):
            raise Conflict("order_ref already reserved other stock")
        if held.order_ref in self.released:
            raise Conflict("order_ref was released")
        return held

    @validated
    def release_stock(self, order_ref: OrderRef) -> bool:
        reservation = self.reservations.get(order_ref)
        if reservation is None or order_ref in self.released:
            return False
        self.released.add(order_ref)
        product = self.products[reservation.product_id]  # deleted since: the stock still goes back
        self._store(product, stock=product.stock + reservation.quantity)
        new = self.products[product.id].stock
        self.events.append(_stock_changed(product.id, product.stock, new))
        return True

    def on_order_status_changed(self, event: OrderStatusChanged) -> bool:
        """The catalog's event handler: a cancelled order's reservation is released (once)."""
        return event.new_status == "cancelled" and self.release_stock(event.order_ref)


# ----------------------------------------------------------------- orders

ORDER_NOT_FOUND = "order not found"


class FakeOrders(OrdersApi):
    """The orders service in memory, taking stock through a catalog; it trusts the caller's
    user id, as the real one does (the gateway took it from a verified token).

    As the real one: stock is reserved through ``CatalogApi.reserve_stock`` under a fresh
    order_ref, and given back through ``release_stock`` best-effort, after a cancel is stored
    (the catalog's handler of order.status_changed is the guarantee: see
    :meth:`FakeCatalog.on_order_status_changed`).
    """

    def __init__(self, catalog: CatalogApi, now: Clock = utcnow, max_pending: int = 10) -> None:
        self.catalog = catalog
        self.now = now
        self.max_pending = max_pending
        self.orders: dict[int, OrderOut] = {}
        self.order_refs: dict[int, str] = {}
        self.keys: dict[tuple[int, str], int] = {}
        self.events: list[Event] = []
        self._ids = itertools.count(1)

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "orders"

    # create

    @validated
    def create_order(
        self, user_id: Id, order: OrderCreate, idempotency_key: IdempotencyKey | None = None
    ) -> OrderOut:
        if (placed := self._placed(user_id, idempotency_key, order)) is not None:
            return placed
        pending = sum(o.user_id == user_id and o.status == "pending" for o in self.orders.values())
        if self.max_pending and pending >= self.max_pending:
            raise Conflict(f"you have {pending} orders awaiting payment, the most allowed")
        order_ref = uuid.uuid4().hex
        reservation = self._reserve(order, order_ref)
        return self._store(user_id, reservation, idempotency_key)

    def _placed(self, user_id: int, key: str | None, order: OrderCreate) -> OrderOut | None:
        if key is None or (user_id, key) not in self.keys:
            return None
        placed = self.orders[self.keys[user_id, key]]
        if (placed.product_id, placed.quantity) != (order.product_id, order.quantity):
            raise Conflict("this Idempotency-Key was used for a different order")
        return placed

    def _reserve(self, order: OrderCreate, order_ref: str) -> Reservation:
        request = ReserveRequest(
            product_id=order.product_id, quantity=order.quantity, order_ref=order_ref
        )
        try:
            return self.catalog.reserve_stock(request)
        except NotFound:
            raise NotFound("product not found") from None
        except MeshError:
            raise
        except Exception as exc:
            self._release(order_ref)
            raise Unavailable("the catalog did not answer; nothing was ordered") from exc

    def _release(self, order_ref: str) -> None:
        """Give the stock back; a failure is logged, never raised (as the real service)."""
        try:
            self.catalog.release_stock(order_ref)
        except Exception:
            log.exception("stock not released", extra={"order_ref": order_ref})

    def _store(self, user_id: int, reservation: Reservation, key: str | None) -> OrderOut:
        now = self.now()
        order = OrderOut(
            id=next(self._ids),
            user_id=user_id,
            product_id=reservation.product_id,
            quantity=reservation.quantity,
            unit_price=reservation.unit_price_cents,
            total=reservation.unit_price_cents * reservation.quantity,
            currency=reservation.currency,
            status="pending",
            created_at=now,
            updated_at=now,
        )
        self.orders[order.id] = order
        self.order_refs[order.id] = reservation.order_ref
        if key is not None:
            self.keys[user_id, key] = order.id
        created = OrderCreated(
            order_id=order.id,
            user_id=user_id,
            product_id=order.product_id,
            quantity=order.quantity,
            total_cents=order.total,
            currency=order.currency,
            occurred_at=now,
        )
        self.events.append(created)
        return order

    # read

    @validated
    def list_orders(self, user_id: Id, query: OrderQuery) -> OrderPage:
        mine = [o for o in self.orders.values() if o.user_id == user_id]
        mine.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        items = mine[query.offset : query.offset + query.limit]
        return OrderPage(items=items, limit=query.limit, offset=query.offset)

    def _visible(self, order_id: int, owner: int | None) -> OrderOut:
        order = self.orders.get(order_id)
        if order is None or (owner is not None and order.user_id != owner):
            raise NotFound(ORDER_NOT_FOUND)
        return order

    @validated
    def get_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        return self._visible(order_id, _owner(viewer))

    @validated
    def order_ref_states(self, refs: OrderRefs) -> list[OrderRefState]:
        asked = set(refs.refs)
        return [
            OrderRefState(order_ref=ref, status=self.orders[order_id].status)
            for order_id, ref in sorted(self.order_refs.items())
            if ref in asked
        ]

    # status

    @validated
    def cancel_order(self, order_id: Id, viewer: Viewer) -> OrderOut:
        return self._change(order_id, "cancelled", _owner(viewer))

    @validated
    def set_status(self, order_id: Id, change: StatusChange) -> OrderOut:
        return self._change(order_id, change.status, None)

    def _change(self, order_id: int, new: Status, owner: int | None) -> OrderOut:
        """Store the move and its event first; a cancel then releases the stock, best-effort."""
        order = self._visible(order_id, owner)
        old = order.status
        if new not in TRANSITIONS[old]:
            raise Conflict(f"an order that is {old} cannot become {new}")
        moved = order.model_copy(update={"status": new, "updated_at": self.now()})
        self.orders[order_id] = moved
        order_ref = self.order_refs[order_id]
        self.events.append(
            OrderStatusChanged(
                order_id=order_id,
                user_id=order.user_id,
                order_ref=order_ref,
                old_status=old,
                new_status=new,
            )
        )
        if new == "cancelled":
            self._release(order_ref)
        return moved


def _owner(viewer: Viewer) -> int | None:
    """Whose orders the viewer may see: None for an administrator (only ``True`` is one)."""
    return None if viewer.is_admin is True else viewer.user_id


# ----------------------------------------------------------------- notifications


class FakeNotifications(NotificationsApi):
    """The notifications service's RPC surface in memory; a test seeds it with :meth:`add`.

    One store, as the real collection: a notification of an order is also in its user's list.
    """

    def __init__(self, now: Clock = utcnow) -> None:
        self.now = now
        self.notifications: list[NotificationOut] = []
        self._seq = itertools.count(1)

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "notifications"

    def add(
        self,
        user_id: int,
        title: str = "Hello",
        body: str = "",
        *,
        order_id: int | None = None,
        kind: str = "user.registered",
        event_id: str | None = None,
        created_at: datetime | None = None,
        email_status: EmailStatus | None = "queued",
        sent_at: datetime | None = None,
    ) -> NotificationOut:
        """Store a notification, as the real service does when it handles an event (its
        e-mail queued unless ``email_status`` says otherwise)."""
        notification = NotificationOut(
            id=f"{next(self._seq):024x}",  # increasing, as MongoDB's ObjectIds are
            event_id=event_id or str(uuid.uuid4()),
            type=kind,
            user_id=user_id,
            order_id=order_id,
            title=title,
            body=body,
            created_at=created_at or self.now(),
            email_status=email_status,
            sent_at=sent_at,
        )
        self.notifications.append(notification)
        return notification

    def _newest(self, keep: Callable[[NotificationOut], bool], limit: int) -> list[NotificationOut]:
        found = [n for n in self.notifications if keep(n)]
        found.sort(key=lambda n: (n.created_at, n.id), reverse=True)
        return found[:limit]

    @validated
    def list_for_user(self, request: ListRequest) -> NotificationPage:
        mine = self._newest(lambda n: n.user_id == request.user_id, len(self.notifications))
        if request.before is not None:
            at = next((i for i, n in enumerate(mine) if n.id == request.before), None)
            if at is None:
                raise NotFound("notification not found (before)")
            mine = mine[at + 1 :]
        items = mine[: request.limit]
        more = len(mine) > request.limit
        return NotificationPage(items=items, next_before=items[-1].id if more else None)

    @validated
    def get_notifications(self, request: OrderNotificationsRequest) -> list[NotificationOut]:
        return self._newest(lambda n: n.order_id == request.order_id, request.limit)


# ----------------------------------------------------------------- courses

COURSE_NOT_FOUND = "course not found"
LESSON_NOT_FOUND = "lesson not found"
JOB_NOT_FOUND = "job not found"
NOT_ENROLLED = "not enrolled in this course"
ALREADY_ENROLLED = "already enrolled in this course"


def _teaches(course: CourseOut, viewer: Viewer) -> bool:
    """The course's instructor, or an administrator (only ``True`` is one)."""
    return viewer.is_admin is True or course.instructor_id == viewer.user_id


def _visible(course: CourseOut) -> bool:
    """Seen by everyone: published at least once (it stays visible while republished)."""
    return course.published_at is not None


class FakeCourses(CoursesApi):
    """The courses service in memory, with its rules (``services/courses/access.py``).

    A course is visible to all once published (``published_at`` set), before that to its
    instructor and administrators only: NotFound to anyone else. Changing a visible course one
    does not teach is Forbidden. ``publish`` only queues a job, as the real service hands it to
    the pipeline; :meth:`run_job` and :meth:`fail_job` play the pipeline's end (``run_job``
    indexes each text lesson as one chunk in ``content`` when given one).
    """

    def __init__(self, content: ContentApi | None = None, now: Clock = utcnow) -> None:
        self.content = content
        self.now = now
        self.courses: dict[int, CourseOut] = {}
        self.lessons: dict[int, LessonOut] = {}
        self.texts: dict[int, str] = {}
        self.enrollments: dict[tuple[int, int], datetime] = {}
        self.completed: dict[tuple[int, int], int] = {}  # (course, user) -> lessons done
        self.done: set[tuple[int, int]] = set()  # (lesson, user)
        self.jobs: dict[str, JobOut] = {}
        self.events: list[Event] = []
        self._course_ids = itertools.count(1)
        self._lesson_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._enrolled_seq: dict[tuple[int, int], int] = {}

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "courses"

    # conveniences for tests (not part of the Protocol)

    def add(
        self,
        instructor_id: int,
        title: str = "Python",
        *,
        lessons: tuple[str, ...] = ("Decorators wrap functions.",),
        published: bool = False,
        capacity: int | None = None,
    ) -> CourseOut:
        """A course with a text lesson per item of ``lessons``, published if asked."""
        course = self.create_course(instructor_id, CourseCreate(title=title, capacity=capacity))
        teacher = Viewer(user_id=instructor_id)
        for number, text in enumerate(lessons, start=1):
            self.add_lesson(course.id, teacher, LessonCreate(title=f"Lesson {number}", text=text))
        if published:
            self.run_job(self.publish(course.id, teacher).id)
        return self.courses[course.id]

    def run_job(self, job_id: str) -> JobOut:
        """The pipeline succeeds: the job is done, the course published, its text indexed."""
        job = self.jobs[job_id]
        assert job.status in ("queued", "running"), f"job {job_id} is {job.status}"
        course = self.courses[job.course_id]
        chunks = [
            IndexedChunk(lesson_id=lesson.id, index=0, text=self.texts[lesson.id], vector=[1.0])
            for lesson in self._lessons_of(course.id)
            if lesson.id in self.texts
        ]
        if self.content is not None:
            self.content.index(IndexBatch(course_id=course.id, version=job.id, chunks=chunks))
            self.content.activate(course.id, job.id)
        if course.status == "publishing":
            self._set_course(
                course, status="published", published_at=course.published_at or self.now()
            )
        event = CoursePublished(
            course_id=course.id,
            instructor_id=course.instructor_id,
            job_id=job.id,
            chunks=len(chunks),
        )
        self.events.append(event)
        last = len(PUBLISH_STEPS)
        return self._set_job(
            job, status="succeeded", step=PUBLISH_STEPS[-1], step_index=last, percent=100
        )

    def fail_job(self, job_id: str, error: str) -> JobOut:
        """The pipeline gives up: the job and the course being published fail."""
        job = self.jobs[job_id]
        course = self.courses[job.course_id]
        if course.status == "publishing":
            self._set_course(course, status="failed")
        return self._set_job(job, status="failed", error=error)

    # helpers

    def _find(self, course_id: int) -> CourseOut:
        course = self.courses.get(course_id)
        if course is None:
            raise NotFound(COURSE_NOT_FOUND)
        return course

    def _seen(self, course_id: int, viewer: Viewer) -> CourseOut:
        course = self._find(course_id)
        if not (_visible(course) or _teaches(course, viewer)):
            raise NotFound(COURSE_NOT_FOUND)
        return course

    def _owned(self, course_id: int, viewer: Viewer) -> CourseOut:
        course = self._seen(course_id, viewer)
        if not _teaches(course, viewer):
            raise Forbidden("only the course's instructor can change it")
        return course

    def _lessons_of(self, course_id: int) -> list[LessonOut]:
        found = [lesson for lesson in self.lessons.values() if lesson.course_id == course_id]
        return sorted(found, key=lambda lesson: (lesson.position, lesson.id))

    def _set_course(self, course: CourseOut, **values: Any) -> CourseOut:
        self.courses[course.id] = course.model_copy(update={**values, "updated_at": self.now()})
        return self.courses[course.id]

    def _set_job(self, job: JobOut, **values: Any) -> JobOut:
        self.jobs[job.id] = job.model_copy(update={**values, "updated_at": self.now()})
        return self.jobs[job.id]

    def _enrolled(self, course_id: int, user_id: int) -> bool:
        return (course_id, user_id) in self.enrollments

    def _progress(self, course_id: int, user_id: int) -> ProgressOut:
        done, total = self.completed.get((course_id, user_id), 0), self.courses[course_id].lessons
        percent = min(done * 100 // total, 100) if total else 0
        return ProgressOut(
            course_id=course_id, user_id=user_id, completed=done, total=total, percent=percent
        )

    # courses

    @validated
    def create_course(self, instructor_id: Id, course: CourseCreate) -> CourseOut:
        now = self.now()
        out = CourseOut(
            id=next(self._course_ids),
            instructor_id=instructor_id,
            title=course.title,
            description=course.description,
            capacity=course.capacity,
            enrolled=0,
            status="draft",
            lessons=0,
            created_at=now,
            updated_at=now,
        )
        self.courses[out.id] = out
        return out

    @validated
    def update_course(self, course_id: Id, viewer: Viewer, patch: CoursePatch) -> CourseOut:
        course = self._owned(course_id, viewer)
        values = patch.model_dump(exclude_unset=True)
        if "capacity" in values and course.enrolled > values["capacity"]:
            raise Conflict("more students are enrolled than this capacity")
        return self._set_course(course, **values)

    @validated
    def list_courses(self, query: CourseQuery) -> CoursePage:
        published = [c for c in self.courses.values() if c.status == "published"]
        published.sort(key=lambda c: (c.published_at, c.id), reverse=True)
        items = published[query.offset : query.offset + query.limit]
        return CoursePage(items=items, total=len(published), limit=query.limit, offset=query.offset)

    @validated
    def get_course(self, course_id: Id, viewer: Viewer) -> CourseOut:
        return self._seen(course_id, viewer)

    # lessons

    @validated
    def add_lesson(self, course_id: Id, viewer: Viewer, lesson: LessonCreate) -> LessonOut:
        course = self._owned(course_id, viewer)
        if course.status == "publishing":
            raise Conflict("the course is being published: try again when its job is done")
        siblings = self._lessons_of(course_id)
        position = lesson.position
        if position is None:
            position = max((s.position for s in siblings), default=-1) + 1
        else:  # the lessons from there on move one down to make room
            for sibling in siblings:
                if sibling.position >= position:
                    moved = sibling.model_copy(update={"position": sibling.position + 1})
                    self.lessons[sibling.id] = moved
        if lesson.text is not None:
            kind, size = "text", len(lesson.text)
        else:
            assert lesson.file is not None  # the contract gives one or the other
            kind, size = lesson.file.kind, lesson.file.size
        out = LessonOut(
            id=next(self._lesson_ids),
            course_id=course_id,
            title=lesson.title,
            position=position,
            kind=kind,
            size=size,
            created_at=self.now(),
        )
        self.lessons[out.id] = out
        if lesson.text is not None:
            self.texts[out.id] = lesson.text
        self._set_course(course, lessons=course.lessons + 1)
        return out

    @validated
    def list_lessons(self, course_id: Id, viewer: Viewer) -> list[LessonOut]:
        self._seen(course_id, viewer)
        return self._lessons_of(course_id)

    # publishing

    @validated
    def publish(self, course_id: Id, viewer: Viewer) -> JobOut:
        course = self._owned(course_id, viewer)
        if course.status == "publishing":
            raise Conflict("the course is already being published")
        if not course.lessons:
            raise Conflict("add at least one lesson before publishing the course")
        now = self.now()
        job = JobOut(
            id=uuid.uuid4().hex,
            course_id=course_id,
            status="queued",
            step=PUBLISH_STEPS[0],
            step_index=0,
            percent=0,
            created_at=now,
            updated_at=now,
        )
        self.jobs[job.id] = job
        self._set_course(course, status="publishing")
        return job

    @validated
    def get_job(self, job_id: JobId, viewer: Viewer) -> JobOut:
        job = self.jobs.get(job_id)
        if job is None or not _teaches(self.courses[job.course_id], viewer):
            raise NotFound(JOB_NOT_FOUND)
        return job

    @validated
    def recent_jobs(self, query: RecentJobsQuery, viewer: Viewer) -> list[JobOut]:
        if not viewer.is_admin:
            raise Forbidden("administrators only")
        newest = sorted(self.jobs.values(), key=lambda job: (job.created_at, job.id), reverse=True)
        return newest[: query.limit]

    # students

    @validated
    def enroll(self, course_id: Id, user_id: Id) -> EnrollmentOut:
        if self._enrolled(course_id, user_id):
            raise Conflict(ALREADY_ENROLLED)
        course = self._seen(course_id, Viewer(user_id=user_id))  # a draft: NotFound
        if course.status != "published":
            raise Conflict("course is not open for enrolment")
        if course.capacity is not None and course.enrolled >= course.capacity:
            raise Conflict("course is full")
        enrolled_at = self.now()
        self.enrollments[course_id, user_id] = enrolled_at
        self._enrolled_seq[course_id, user_id] = next(self._seq)
        self._set_course(course, enrolled=course.enrolled + 1)
        self.events.append(EnrollmentCreated(course_id=course_id, user_id=user_id))
        return EnrollmentOut(course_id=course_id, user_id=user_id, enrolled_at=enrolled_at)

    @validated
    def my_courses(self, user_id: Id) -> list[MyCourse]:
        mine = [pair for pair in self.enrollments if pair[1] == user_id]
        mine.sort(key=lambda pair: (self.enrollments[pair], self._enrolled_seq[pair]))
        return [
            MyCourse(course=self.courses[course_id], enrolled_at=self.enrollments[course_id, user])
            for course_id, user in reversed(mine)
        ]

    @validated
    def complete_lesson(self, lesson_id: Id, user_id: Id) -> ProgressOut:
        lesson = self.lessons.get(lesson_id)
        if lesson is None or not _visible(self.courses[lesson.course_id]):
            raise NotFound(LESSON_NOT_FOUND)
        course_id = lesson.course_id
        if not self._enrolled(course_id, user_id):
            raise Forbidden("only students enrolled in the course can complete its lessons")
        if (lesson_id, user_id) not in self.done:
            self.done.add((lesson_id, user_id))
            self.completed[course_id, user_id] = self.completed.get((course_id, user_id), 0) + 1
            progress = self._progress(course_id, user_id)
            self.events.append(
                ProgressUpdated(
                    course_id=course_id,
                    user_id=user_id,
                    lesson_id=lesson_id,
                    completed=progress.completed,
                    total=progress.total,
                )
            )
        return self._progress(course_id, user_id)

    @validated
    def get_progress(self, course_id: Id, user_id: Id) -> ProgressOut:
        if course_id not in self.courses or not self._enrolled(course_id, user_id):
            raise NotFound(NOT_ENROLLED)
        return self._progress(course_id, user_id)

    @validated
    def check_access(self, course_id: Id, viewer: Viewer) -> CourseOut:
        course = self._find(course_id)
        if _teaches(course, viewer) or self._enrolled(course_id, viewer.user_id):
            return course
        if _visible(course):
            raise Forbidden("enrol in the course to see its content")
        raise NotFound(COURSE_NOT_FOUND)


# ----------------------------------------------------------------- content


class FakeContent(ContentApi):
    """The content service's index in memory: one chunk per (course, lesson, index).

    As the real index: a chunk indexed again overwrites the one at its place, whatever the
    version; ``activate`` drops the course's chunks of every other version; ``search`` answers
    up to ``limit`` chunks of the course (the real one's dense half always finds some), those
    sharing more words with the query first. Each passage tells its ``similarity`` to the query,
    as the real one tells its cosine: here the share of the query's meaningful words (those the
    assistant's extractive answers weigh, ``services.assistant.extractive.terms``) that the
    chunk has, so the assistant's threshold parts on-topic questions from off-topic ones here too.
    """

    def __init__(self) -> None:
        self.chunks: dict[tuple[int, int, int], tuple[str, IndexedChunk]] = {}

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "content"

    @validated
    def search(self, request: SearchRequest) -> list[Passage]:
        wanted = terms(request.q)
        found = [
            (len(wanted & terms(chunk.text)), chunk)
            for (course_id, _, _), (_, chunk) in list(self.chunks.items())
            if course_id == request.course_id
        ]
        found.sort(key=lambda pair: (-pair[0], pair[1].lesson_id, pair[1].index))
        return [
            Passage(
                lesson_id=chunk.lesson_id,
                position=chunk.index,
                locator=chunk.locator,
                text=chunk.text,
                score=1 / (60 + rank),  # reciprocal rank fusion's scale
                similarity=shared / len(wanted) if wanted else 0.0,
            )
            for rank, (shared, chunk) in enumerate(found[: request.limit], start=1)
        ]

    @validated
    def index(self, batch: IndexBatch) -> int:
        for chunk in batch.chunks:
            self.chunks[batch.course_id, chunk.lesson_id, chunk.index] = (batch.version, chunk)
        return len(batch.chunks)

    @validated
    def activate(self, course_id: Id, version: Version) -> int:
        self.chunks = {
            key: value
            for key, value in self.chunks.items()
            if key[0] != course_id or value[0] == version
        }
        return self.count(course_id)

    @validated
    def count(self, course_id: Id) -> int:
        return sum(1 for key in self.chunks if key[0] == course_id)


# ----------------------------------------------------------------- assistant

MODEL_TIMED_OUT = "the language model did not answer in time"


class ScriptedModel(ChatModel):
    """A chat model that writes ``pieces``, as ``ChatModel.stream`` yields its tokens; with
    ``fail_after``, it breaks off after that many with :class:`ModelFailed` (``failure``), as
    the real one reports an upstream failure. ``chats`` keeps every chat it was sent."""

    def __init__(
        self,
        pieces: Sequence[str] = ("A decorator ", "wraps ", "a function ", "[1]."),
        *,
        fail_after: int | None = None,
        failure: str = MODEL_TIMED_OUT,
    ) -> None:
        self.pieces = list(pieces)
        self.fail_after = fail_after
        self.failure = failure
        self.chats: list[list[ChatCompletionMessageParam]] = []

    def stream(self, chat: list[ChatCompletionMessageParam]) -> Iterator[str]:
        self.chats.append(chat)
        for number, piece in enumerate(self.pieces):
            if self.fail_after is not None and number >= self.fail_after:
                raise ModelFailed(self.failure)
            yield piece

    def close(self) -> None:
        pass


def _bson_time(moment: datetime) -> datetime:
    """A time as MongoDB keeps it: to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class StoredConversation:
    """What the real service keeps of a conversation (one MongoDB document)."""

    conversation_id: str
    user_id: int
    course_id: int
    title: str
    created_at: datetime
    updated_at: datetime
    seq: int  # orders conversations active at the same instant, as MongoDB's _id does

    def summary(self) -> ConversationSummary:
        return ConversationSummary(
            conversation_id=self.conversation_id,
            course_id=self.course_id,
            title=self.title,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class FakeAssistant(AssistantApi):
    """The assistant service with its conversations in memory instead of MongoDB.

    It answers as the real one does, through the service's own functions: the passages close
    enough to the question from ``content`` (``logic.retrieve``: a vague follow-up is searched
    again with the previous question), then the extractive answer quoting and citing them, or
    "not found in this course" when none is close enough, or the tokens of ``model`` (a
    :class:`ScriptedModel`) when one is set; each event is appended to the Redis Stream of the
    request's ``stream_id`` in ``redis`` (the service's own writer, ``services.assistant.stream``,
    so the gateway's relay reads what the real one writes), and the cancel flag stops it at the
    next token. A conversation is its owner's and its course's: NotFound for anyone else.

    Test controls, none of which the real service has: ``refuse`` is raised before anything
    is done; ``hold_before``/``hold_after`` pause the answer before/after its ``sources``
    event until set; ``delay`` seconds pass before each piece of the answer. ``asked`` and
    ``correlation_ids`` record each ask, ``finished`` is set when one ends.
    """

    def __init__(
        self,
        content: ContentApi,
        redis: Any = None,
        *,
        model: ChatModel | None = None,
        limits: assistant_logic.Limits | None = None,
        now: Clock = utcnow,
    ) -> None:
        self.content = content
        self.redis: Any = FakeStreamsRedis() if redis is None else redis
        self.model = model
        self.limits = limits or assistant_logic.Limits()
        self.now = now
        self.conversations: dict[str, StoredConversation] = {}
        self.turns: dict[str, list[Turn]] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.refuse: MeshError | None = None
        self.delay = 0.0
        self.hold_before = threading.Event()
        self.hold_after = threading.Event()
        self.hold_before.set()
        self.hold_after.set()
        self.asked: list[AskRequest] = []
        self.correlation_ids: list[str | None] = []
        self.finished = threading.Event()

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "assistant"

    @validated
    def ask(self, request: AskRequest) -> Answer:
        self.asked.append(request)
        self.correlation_ids.append(get_correlation_id())
        try:
            return self._answer(request)
        finally:
            self.finished.set()

    def _answer(self, request: AskRequest) -> Answer:
        """``services.assistant.logic.ask``, step by step, on the in-memory store."""
        if self.refuse is not None:
            raise self.refuse
        setup = assistant_logic.Setup(self.model, self.limits)
        deadline = time.monotonic() + setup.limits.max_seconds
        asked_at = self.now()
        context = self._gather(request, setup.limits)
        mode, found = setup.mode, bool(context.sources)
        events = events_for(self.redis, request.stream_id)
        self.hold_before.wait(10)
        first = SourcesEvent(
            conversation_id=context.conversation_id,
            mode=mode,
            found=found,
            sources=context.sources,
        )
        cancelled = events.send("sources", first)
        if context.is_new:
            self._start(context.conversation_id, request, asked_at)
        self.hold_after.wait(10)
        if cancelled:
            outcome = assistant_logic.Outcome("", "cancelled")
        else:
            pieces = assistant_logic.answer_pieces(setup.model, request.question, context)
            outcome = assistant_logic.relay(self._slowed(pieces), events, deadline, time.monotonic)
        turn = Turn(
            question=request.question,
            answer=outcome.text,
            sources=context.sources,
            mode=mode,
            found=found,
            status=outcome.status,
            error=outcome.error,
            asked_at=_bson_time(asked_at),
            answered_at=_bson_time(self.now()),
        )
        self._add_turn(context.conversation_id, turn)
        assistant_logic.finish(events, context.conversation_id, turn)
        fields = turn.model_dump(include={"answer", "sources", "mode", "found", "status", "error"})
        return Answer(conversation_id=context.conversation_id, **fields)

    def _slowed(self, pieces: Iterator[str]) -> Iterator[str]:
        try:
            for piece in pieces:
                time.sleep(self.delay)
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _gather(
        self, request: AskRequest, limits: assistant_logic.Limits
    ) -> assistant_logic.Context:
        """The conversation continued (NotFound unless the caller's, of this course) and its
        recent turns, and the passages (``logic.gather``)."""
        history: list[Turn] = []
        if request.conversation_id is None:
            conversation_id, is_new = uuid.uuid4().hex, True
        else:
            conversation = self._owned(request.conversation_id, request.user_id)
            if conversation.course_id != request.course_id:
                raise NotFound(assistant_store.NOT_FOUND)
            conversation_id, is_new = conversation.conversation_id, False
            if limits.history_turns > 0:
                history = self._in_order(conversation_id)[-limits.history_turns :]
        sources = assistant_logic.retrieve(self.content, request, history, limits)
        return assistant_logic.Context(conversation_id, is_new, history, sources)

    def _owned(self, conversation_id: str, user_id: int) -> StoredConversation:
        with self._lock:
            conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation.user_id != user_id:
            raise NotFound(assistant_store.NOT_FOUND)
        return conversation

    def _in_order(self, conversation_id: str) -> list[Turn]:
        with self._lock:
            turns = list(self.turns.get(conversation_id, []))
        return sorted(turns, key=lambda turn: turn.asked_at)

    def _start(self, conversation_id: str, request: AskRequest, now: datetime) -> None:
        stored = _bson_time(now)
        with self._lock:
            self.conversations[conversation_id] = StoredConversation(
                conversation_id=conversation_id,
                user_id=request.user_id,
                course_id=request.course_id,
                title=request.question[: assistant_store.TITLE_MAX],
                created_at=stored,
                updated_at=stored,
                seq=next(self._seq),
            )
            self.turns[conversation_id] = []

    def _add_turn(self, conversation_id: str, turn: Turn) -> None:
        with self._lock:
            self.turns[conversation_id].append(turn)
            self.conversations[conversation_id].updated_at = turn.answered_at

    @validated
    def list_conversations(self, user_id: Id) -> list[ConversationSummary]:
        with self._lock:
            mine = [c for c in self.conversations.values() if c.user_id == user_id]
        mine.sort(key=lambda c: (c.updated_at, c.seq), reverse=True)
        return [c.summary() for c in mine[: assistant_store.LIST_LIMIT]]

    @validated
    def get_conversation(self, conversation_id: HexId, user_id: Id) -> Conversation:
        conversation = self._owned(conversation_id, user_id)
        turns = self._in_order(conversation_id)[: assistant_store.TURNS_SHOWN]
        return Conversation(**conversation.summary().model_dump(), turns=turns)


# ----------------------------------------------------------------- analytics


@dataclass
class OrderFacts:
    """What analytics remembers of one order (``services.analytics.models.OrderFact``)."""

    product_id: int | None = None
    currency: str | None = None
    total_cents: int | None = None
    placed_on: date | None = None
    cancelled_on: date | None = None


PRODUCT_FIGURES = ("orders", "items", "revenue_cents", "cancellations", "cancelled_cents")


@dataclass
class Counters:
    """The daily counters of ``services.analytics.models``, in memory."""

    events: Counter[tuple[date, str]] = field(default_factory=Counter)
    signups: Counter[date] = field(default_factory=Counter)
    enrollments: Counter[tuple[date, int]] = field(default_factory=Counter)
    completions: Counter[tuple[date, int]] = field(default_factory=Counter)
    products: dict[tuple[date, int, str], Counter[str]] = field(default_factory=dict)

    def product(self, day: date, product_id: int, currency: str) -> Counter[str]:
        return self.products.setdefault((day, product_id, currency), Counter())


class FakeAnalytics(AnalyticsApi):
    """The analytics service in memory: its event handlers count each event once (by its id)
    into daily counters as ``services/analytics/ledger.py`` and ``tally.py`` do, and its
    reports read them back as ``reports.py`` does. Feed it with the service's own handlers
    (``on_order_created(body)``...: wire bodies, a broken one is a ContractViolation) or
    :meth:`count`. The queries are validated as the real entrypoints validate them: a bad
    date, ``from`` after ``to`` or a range over ``MAX_DAYS`` is InvalidInput.
    """

    def __init__(self) -> None:
        self.counted: set[str] = set()
        self.counters = Counters()
        self.facts: dict[int, OrderFacts] = {}
        self._lock = threading.Lock()

    def ping(self) -> str:
        """The readiness RPC every real service answers (not part of its Protocol)."""
        return "analytics"

    # counting (``ledger.count``)

    def count(self, event: Event) -> bool:
        """Count ``event`` unless it was counted already; True if counted now."""
        tally = self._tallies()[event.type]  # an unknown type fails, as TALLIES[...] does
        with self._lock:
            if str(event.event_id) in self.counted:
                return False
            self.counted.add(str(event.event_id))
            self.counters.events[day_of(event), event.type] += 1
            tally(event)
        return True

    def _tallies(self) -> dict[str, Callable[[Any], None]]:
        return {
            UserRegistered.type: self._signup,
            ProductUpdated.type: lambda event: None,
            OrderCreated.type: self._order_placed,
            OrderStatusChanged.type: self._order_status_changed,
            CoursePublished.type: lambda event: None,
            EnrollmentCreated.type: self._enrollment,
            ProgressUpdated.type: self._completion,
        }

    def _signup(self, event: UserRegistered) -> None:
        self.counters.signups[day_of(event)] += 1

    def _enrollment(self, event: EnrollmentCreated) -> None:
        self.counters.enrollments[day_of(event), event.course_id] += 1

    def _completion(self, event: ProgressUpdated) -> None:
        self.counters.completions[day_of(event), event.course_id] += 1

    def _order_placed(self, event: OrderCreated) -> None:
        fact = self.facts.get(event.order_id)
        if fact is not None and fact.placed_on is not None:
            log.warning("order.created again for a counted order")
            return
        if event.total_cents is None or event.currency is None:
            currency, total = UNPRICED, 0
        else:
            currency, total = event.currency, event.total_cents
        figures = self.counters.product(day_of(event), event.product_id, currency)
        figures.update(orders=1, items=event.quantity, revenue_cents=total)
        fact = self.facts.setdefault(event.order_id, OrderFacts())
        fact.product_id, fact.currency, fact.total_cents = event.product_id, currency, total
        fact.placed_on = day_of(event)
        if fact.cancelled_on is not None:
            self._cancelled(fact)

    def _order_status_changed(self, event: OrderStatusChanged) -> None:
        if event.new_status != "cancelled":
            return
        fact = self.facts.get(event.order_id)
        if fact is None:
            self.facts[event.order_id] = OrderFacts(cancelled_on=day_of(event))
        elif fact.cancelled_on is None:
            fact.cancelled_on = day_of(event)
            if fact.placed_on is not None:
                self._cancelled(fact)

    def _cancelled(self, fact: OrderFacts) -> None:
        assert fact.cancelled_on is not None and fact.product_id is not None
        figures = self.counters.product(fact.cancelled_on, fact.product_id, fact.currency or "")
        figures.update(cancellations=1, cancelled_cents=fact.total_cents or 0)

    # the service's event handlers

    def on_user_registered(self, body: Any) -> None:
        self.count(parse_event(UserRegistered, body))

    def on_product_updated(self, body: Any) -> None:
        self.count(parse_event(ProductUpdated, body))

    def on_order_created(self, body: Any) -> None:
        self.count(parse_event(OrderCreated, body))

    def on_order_status_changed(self, body: Any) -> None:
        self.count(parse_event(OrderStatusChanged, body))

    def on_course_published(self, body: Any) -> None:
        self.count(parse_event(CoursePublished, body))

    def on_enrollment_created(self, body: Any) -> None:
        self.count(parse_event(EnrollmentCreated, body))

    def on_progress_updated(self, body: Any) -> None:
        self.count(parse_event(ProgressUpdated, body))

    # the reports

    @validated
    def signups(self, query: ReportQuery) -> list[SignupsRow]:
        with self._lock:
            counted = dict(self.counters.signups)
        return [SignupsRow(day=day, signups=counted.get(day, 0)) for day in query.days()]

    @validated
    def enrollments(self, query: EnrollmentsQuery) -> list[EnrollmentsRow]:
        with self._lock:
            enrolled, completed = dict(self.counters.enrollments), dict(self.counters.completions)
        keys = sorted(
            (day, course_id)
            for day, course_id in enrolled.keys() | completed.keys()
            if query.from_ <= day <= query.to and query.course_id in (None, course_id)
        )
        return [
            EnrollmentsRow(
                day=day,
                course_id=course_id,
                enrollments=enrolled.get((day, course_id), 0),
                lesson_completions=completed.get((day, course_id), 0),
            )
            for day, course_id in keys
        ]

    @validated
    def orders(self, query: OrdersReportQuery) -> list[OrdersRow]:
        with self._lock:
            products = {key: Counter(figures) for key, figures in self.counters.products.items()}
        keys = sorted(
            (day, product_id, currency)
            for day, product_id, currency in products
            if query.from_ <= day <= query.to and query.product_id in (None, product_id)
        )
        return [
            OrdersRow(
                day=day,
                product_id=product_id,
                currency=None if currency == UNPRICED else currency,
                **{name: products[day, product_id, currency][name] for name in PRODUCT_FIGURES},
            )
            for day, product_id, currency in keys
        ]

    @validated
    def event_counts(self, query: ReportQuery) -> list[EventCountsRow]:
        with self._lock:
            counted = dict(self.counters.events)
        return [
            EventCountsRow(day=day, event_type=event_type, events=counted[day, event_type])
            for day, event_type in sorted(counted)
            if query.from_ <= day <= query.to
        ]
