"""Input at the edge never gives a 500 (issue 9): lone surrogates, ids past the id columns,
control characters in one-line names; stores that do not answer give 503 with Retry-After;
login limits that one address cannot turn against an account; addresses behind proxies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol

import pytest
import sqlalchemy.exc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import BigInteger, Integer

from contracts.base import ID_MAX, Id, Line
from contracts.catalog import ProductOut, ProductUpdated
from contracts.courses import CourseOut, EnrollmentCreated
from contracts.errors import NotFound, Unavailable
from contracts.users import UserOut
from mesh.typed import UNAVAILABLE_MESSAGE, client, expose
from services.analytics import models as analytics_models
from services.catalog import models as catalog_models
from services.courses import models as courses_models
from services.notifications import messages
from services.orders import models as orders_models
from services.users import models as users_models
from tests.unit.gateway_helpers import assert_error, bearer
from tests.unit.service_fakes import PASSWORD, LocalTransport

LOGIN, REGISTER = "/api/auth/login", "/api/auth/register"
INT32_MAX = 2**31 - 1


def post_json(client: Any, path: str, body: Any, **kwargs: Any) -> Any:
    """POST ``body`` as JSON text: ``json.dumps`` writes a lone surrogate as ``\\ud800``."""
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


@pytest.fixture
def admin(login) -> dict[str, str]:
    return bearer(login("root@example.com", admin=True)["access_token"])


# ----------------------------------------------------------------- lone surrogates


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (LOGIN, {"email": "a\ud800@x.com", "password": "x"}, "email"),
        (LOGIN, {"email": "a@example.com", "password": "x\udfff"}, "password"),
        (REGISTER, {"email": "a\ud800@x.com", "password": PASSWORD, "name": "A"}, "email"),
        (REGISTER, {"email": "a@example.com", "password": PASSWORD, "name": "A\ud800"}, "name"),
    ],
)
def test_a_lone_surrogate_in_an_auth_body_is_422(client, path, body, field) -> None:
    details = assert_error(post_json(client, path, body), 422, "invalid_input")["details"]
    assert [d["field"] for d in details] == [field]


SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
WITH_SURROGATE = st.tuples(st.text(max_size=20), SURROGATE, st.text(max_size=20)).map("".join)
AUTH_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "email": WITH_SURROGATE | st.just("ada@example.com"),
        "password": WITH_SURROGATE | st.just(PASSWORD),
        "name": WITH_SURROGATE | st.just("Ada"),
        "role": WITH_SURROGATE | st.just("student"),
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(path=st.sampled_from([LOGIN, REGISTER]), body=AUTH_BODIES)
def test_no_auth_body_with_lone_surrogates_gives_a_500(app, path, body) -> None:
    # ``app`` is one app for every example: the limits are high enough in the test config.
    with app.test_client() as test_client:
        response = post_json(test_client, path, body)
    assert response.status_code < 500, response.get_json()
    if any("\ud800" <= ch <= "\udfff" for value in body.values() for ch in value):
        assert response.status_code == 422


def _writes(app) -> list[tuple[str, str]]:
    """Every (method, path) that takes a body, its ids set to 1."""
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            path = rule.rule
            for argument in rule.arguments:
                path = path.replace(f"<id:{argument}>", "1").replace(f"<{argument}>", "1")
            routes.append((method, path))
    return routes


def test_no_write_route_gives_a_500_for_lone_surrogates(app, client, admin, fake_catalog) -> None:
    fake_catalog.add("Lamp")
    body = {
        key: "x\ud800y"
        for key in ("email", "password", "name", "title", "description", "q", "text", "currency")
    }
    for method, path in _writes(app):
        response = client.open(
            path,
            method=method,
            data=json.dumps(body),
            content_type="application/json",
            headers=admin,
        )
        assert response.status_code < 500, (method, path, response.get_json())


# ----------------------------------------------------------------- ids past the id columns


def _id_columns() -> list[Any]:
    models = (users_models, catalog_models, orders_models, courses_models, analytics_models)
    return [
        column
        for model in models
        for table in model.Base.metadata.tables.values()
        for column in table.columns
        if (column.name == "id" or column.name.endswith("_id")) and isinstance(column.type, Integer)
    ]


def test_an_id_the_contracts_accept_fits_every_id_column() -> None:
    """PostgreSQL refuses to compare an INTEGER column with a larger number: a 500."""
    columns = _id_columns()
    assert any(not isinstance(c.type, BigInteger) for c in columns)  # 32-bit ones exist
    for column in columns:
        largest = 2**63 - 1 if isinstance(column.type, BigInteger) else INT32_MAX
        assert largest >= ID_MAX, f"{column.table.name}.{column.name}"


@pytest.mark.parametrize("value", [INT32_MAX + 1, 2**63 - 1, 0, True, "1"])
def test_an_id_past_the_columns_breaks_the_contract(value: Any) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Id).validate_python(value)
    assert TypeAdapter(Id).validate_python(INT32_MAX) == INT32_MAX


@pytest.mark.parametrize("path", ["/api/products/2147483648", "/api/users/2147483648"])
def test_a_path_id_past_the_columns_is_404_without_rpc(client, admin, transport, path) -> None:
    calls = len(transport.calls)
    assert_error(client.get(path, headers=admin), 404, "not_found")
    assert len(transport.calls) == calls


def test_the_largest_path_id_reaches_the_service(client, transport) -> None:
    assert_error(client.get("/api/products/2147483647"), 404, "not_found")
    assert [c.args for c in transport.calls] == [(INT32_MAX,)]


def test_a_body_id_past_the_columns_is_422_without_an_order(client, login, transport) -> None:
    user = bearer(login("ada@example.com")["access_token"])
    calls = len(transport.calls)
    body = {"product_id": INT32_MAX + 1, "quantity": 1}
    details = assert_error(
        client.post("/api/orders", json=body, headers=user), 422, "invalid_input"
    )
    assert [d["field"] for d in details["details"]] == ["product_id"]
    assert len(transport.calls) == calls


# ----------------------------------------------------------------- one-line names


@pytest.mark.parametrize("name", ["Lamp\nBcc: eve@example.com", "La\rmp", "La\tmp", "La\u2028mp"])
def test_a_product_name_on_two_lines_is_422(client, admin, fake_catalog, name) -> None:
    body = {"name": name, "price_cents": 100}
    details = assert_error(
        client.post("/api/products", json=body, headers=admin), 422, "invalid_input"
    )
    assert [d["field"] for d in details["details"]] == ["name"]
    fake_catalog.add("Lamp")
    response = client.patch("/api/products/1", json={"name": name}, headers=admin)
    assert_error(response, 422, "invalid_input")


def test_a_course_title_on_two_lines_is_422(client, login) -> None:
    teacher = bearer(login("tea@example.com", role="instructor")["access_token"])
    response = client.post("/api/courses", json={"title": "Intro\nBcc: x"}, headers=teacher)
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "text", ["plain", "tab\tline\nbreak", "\x00", "a\x85b", "a\u2029b", "é 漢"]
)
def test_a_line_refuses_what_its_pattern_says(text: str) -> None:
    import re

    from contracts.base import ONE_LINE

    try:
        TypeAdapter(Line).validate_python(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == bool(re.fullmatch(ONE_LINE, text))
    assert accepted == (text in ("plain", "é 漢"))


STAMP = datetime(2026, 1, 2, tzinfo=UTC)
KIM = UserOut(id=3, email="kim@example.com", name="Kim", created_at=STAMP)


def subject_of(doc: dict[str, Any]) -> str:
    """The Subject the e-mail actor writes (EmailMessage refuses a header with a line break)."""
    message = EmailMessage()
    message["Subject"] = doc["email"]["subject"]
    message.set_content(doc["email"]["text"])
    message.as_bytes()
    return str(message["Subject"])


def test_a_name_stored_on_two_lines_is_folded_into_one_subject() -> None:
    lamp = ProductOut(
        id=1,
        name="Desk\r\nlamp\x00 ",
        description="",
        price_cents=1500,
        currency="EUR",
        stock=2,
        created_at=STAMP,
        updated_at=STAMP,
    )
    event = ProductUpdated(product_id=1, change="updated")
    doc = messages.wishlist_alert(event, lamp, KIM, "back_in_stock")
    assert subject_of(doc) == "Desk lamp is back in stock"
    course = CourseOut(
        id=2,
        instructor_id=1,
        title="Intro\nto\u2028things",
        description="",
        capacity=None,
        enrolled=0,
        status="published",
        lessons=1,
        created_at=STAMP,
        updated_at=STAMP,
    )
    enrolled = EnrollmentCreated(course_id=2, user_id=3)
    assert (
        subject_of(messages.course_welcome(enrolled, course, KIM)) == "Welcome to Intro to things"
    )


# ----------------------------------------------------------------- stores that do not answer


class Shelf(Protocol):
    """The Protocol of a one-method service (mesh.typed.client speaks it)."""

    def count(self, product_id: Id) -> int: ...


class ShelfService:
    """A service whose store raises what it is given: as a nameko service method would."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @expose
    def count(self, product_id: Id) -> int:
        raise self.error


def operational_error() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT secret FROM t", {}, Exception("locked"))


@pytest.mark.parametrize(
    "error",
    [
        operational_error(),
        __import__("pymongo").errors.ServerSelectionTimeoutError("mongo:27017 refused"),
        __import__("pymongo").errors.AutoReconnect("gone"),
        __import__("redis").exceptions.ConnectionError("redis refused"),
        TimeoutError("catalog.get_product did not answer within 5 s"),
    ],
)
def test_a_store_that_does_not_answer_is_unavailable_to_the_caller(error: BaseException) -> None:
    shelf = client(Shelf, "shelf", LocalTransport(shelf=ShelfService(error)))
    with pytest.raises(Unavailable) as caught:
        shelf.count(1)
    assert caught.value.message == UNAVAILABLE_MESSAGE  # never the driver's text


def test_a_bug_stays_a_bug(caplog) -> None:
    from nameko.exceptions import RemoteError

    shelf = client(Shelf, "shelf", LocalTransport(shelf=ShelfService(KeyError("x"))))
    with pytest.raises(RemoteError):
        shelf.count(1)
    shelf = client(Shelf, "shelf", LocalTransport(shelf=ShelfService(NotFound("no such shelf"))))
    with pytest.raises(NotFound):
        shelf.count(1)


def test_unavailable_is_503_with_retry_after(client, fake_catalog, monkeypatch) -> None:
    def down(_product_id: int) -> None:
        raise Unavailable(UNAVAILABLE_MESSAGE)

    monkeypatch.setattr(fake_catalog, "get_product", down)
    response = client.get("/api/products/1")
    body = assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert "SELECT" not in body["message"]


# ----------------------------------------------------------------- login limits


def _login(client: Any, email: str, password: str, ip: str, **headers: str) -> int:
    body = {"email": email, "password": password}
    environ = {"REMOTE_ADDR": ip}
    return int(client.post(LOGIN, json=body, environ_base=environ, headers=headers).status_code)


@pytest.fixture
def ada(register) -> str:
    register(email="ada@example.com")
    return "ada@example.com"


def test_one_address_hammering_an_account_does_not_keep_its_owner_out(make_app, ada) -> None:
    app = make_app(LOGIN_RATE_ACCOUNT="3/minute", LOGIN_RATE_ACCOUNT_TOTAL="5/minute")
    with app.test_client() as http:
        outcomes = [_login(http, ada, "wrong password", "10.6.6.6") for _ in range(20)]
        assert outcomes == [401] * 3 + [429] * 17
        assert _login(http, ada, PASSWORD, "10.0.0.7") == 200  # a new address, the owner


def test_the_account_ceiling_stops_a_distributed_brute_force(make_app, ada) -> None:
    app = make_app(LOGIN_RATE_ACCOUNT="3/minute", LOGIN_RATE_ACCOUNT_TOTAL="5/minute")
    with app.test_client() as http:
        assert _login(http, ada, PASSWORD, "10.0.0.7") == 200  # the owner's own address
        outcomes = [_login(http, ada, "wrong password", f"10.9.0.{n}") for n in range(8)]
        assert outcomes == [401] * 5 + [429] * 3
        assert _login(http, ada, PASSWORD, "10.9.1.1") == 429  # right password, new address
        assert _login(http, ada, PASSWORD, "10.0.0.7") == 200  # known address: not locked out
        assert _login(http, "bob@example.com", "wrong password", "10.9.1.2") == 401


# ----------------------------------------------------------------- trusted proxies


def test_without_trusted_proxies_x_forwarded_for_is_ignored(make_app) -> None:
    app = make_app(LOGIN_RATE_IP="2/minute")
    with app.test_client() as http:
        for n in range(2):
            forwarded = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert _login(http, f"u{n}@example.com", "x", "10.0.0.1", **forwarded) == 401
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        assert _login(http, "u9@example.com", "x", "10.0.0.1", **forwarded) == 429


def test_behind_trusted_proxies_limits_key_on_the_forwarded_address(make_app) -> None:
    app = make_app(LOGIN_RATE_IP="2/minute", TRUSTED_PROXIES=1)
    proxy = "10.0.0.1"
    with app.test_client() as http:
        for n in range(2):
            forwarded = {"X-Forwarded-For": "203.0.113.1"}
            assert _login(http, f"u{n}@example.com", "x", proxy, **forwarded) == 401
        assert (
            _login(http, "u8@example.com", "x", proxy, **{"X-Forwarded-For": "203.0.113.1"}) == 429
        )
        # One hop: only the address the proxy appended counts, not one the client wrote.
        spoofed = {"X-Forwarded-For": "198.51.100.7, 203.0.113.2"}
        assert _login(http, "u9@example.com", "x", proxy, **spoofed) == 401
        assert (
            _login(http, "u9@example.com", "x", proxy, **{"X-Forwarded-For": "203.0.113.1"}) == 429
        )
