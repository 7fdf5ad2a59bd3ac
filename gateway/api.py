"""Each view declares its HTTP contract once, here; the view, the checks and the OpenAPI
document all follow from that one declaration.

    @bp.post("")
    @endpoint("Order a product", tag="orders", auth="access", body=OrderCreate,
              response=OrderOut, status=201, errors=(404, 409))
    def create(body: OrderCreate) -> OrderOut: ...

The decorator checks the token (``auth``), parses the JSON body into ``body`` and the query
string into ``query`` (each a contract model, 4xx on failure), and turns a returned model into
a JSON response with the declared status. ``gateway.openapi`` reads the declarations from
``app.url_map``, so a route without one cannot exist unnoticed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

from flask import Response, current_app, jsonify, request
from flask_jwt_extended import verify_jwt_in_request
from pydantic import BaseModel
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from contracts.base import parse
from contracts.errors import Forbidden, InvalidInput
from gateway.auth import current_user_is_admin, current_user_teaches
from gateway.http import INTEGER, json_body, refuse_nulls, too_large
from gateway.uploads import FILE_FIELD, read_form

Auth = Literal["none", "access", "refresh", "instructor", "admin"]
SPEC_ATTRIBUTE = "__endpoint__"
MULTIPART = "multipart/form-data"


@dataclass(frozen=True)
class Header:
    """A request header the view reads, documented as a parameter."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """What one view takes, returns and may answer.

    ``also_media``: other media types the success answer may take instead of ``media``,
    chosen by the request's Accept header (the view negotiates; documented as text).
    """

    summary: str
    tag: str
    status: int = 200
    body: type[BaseModel] | None = None
    upload: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    media: str = "application/json"
    also_media: tuple[str, ...] = ()
    auth: Auth = "none"
    errors: tuple[int, ...] = ()
    headers: tuple[Header, ...] = ()
    also: tuple[tuple[int, type[BaseModel]], ...] = ()
    cached: bool = False
    description: str = ""


View = Callable[..., Any]


def endpoint(summary: str, *, tag: str, **declared: Any) -> Callable[[View], View]:
    """Declare a view's contract (see :class:`Endpoint`) and enforce it."""
    spec = Endpoint(summary, tag, **declared)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authorise(spec.auth)
            if spec.upload is not None and request.mimetype == MULTIPART:
                kwargs["upload"] = read_upload(spec.upload)
            elif spec.body is not None:
                kwargs["body"] = parse(spec.body, refuse_nulls(json_body()))
            if spec.query is not None:
                kwargs["query"] = parse_query(spec.query)
            return respond(spec, current_app.ensure_sync(view)(*args, **kwargs))

        setattr(wrapper, SPEC_ATTRIBUTE, spec)
        return wrapper

    return decorate


def spec_of(view: Callable[..., Any]) -> Endpoint | None:
    """The declaration of a view, through any decorators wrapped around it since."""
    while view is not None:
        spec = getattr(view, SPEC_ATTRIBUTE, None)
        if spec is not None:
            return cast(Endpoint, spec)
        view = getattr(view, "__wrapped__", None)  # type: ignore[assignment]
    return None


def authorise(auth: Auth) -> None:
    """401 without a valid token of the right kind; 403 for a non-admin on admin routes."""
    if auth == "none":
        return
    verify_jwt_in_request(refresh=auth == "refresh")
    if auth == "admin" and not current_user_is_admin():
        raise Forbidden("administrators only")
    if auth == "instructor" and not current_user_teaches():
        raise Forbidden("instructors only (register with role 'instructor')")


@dataclass(frozen=True)
class Upload:
    """A multipart request: its form fields as a model, and the file part."""

    fields: BaseModel
    file: FileStorage


def read_upload(model: type[BaseModel]) -> Upload:
    """Parse a multipart body under the upload limit: 413 above it, 422 without a file."""
    limit = int(current_app.config["UPLOAD_MAX_BYTES"])
    request.max_content_length = limit
    try:
        form = read_form(request.stream, request.mimetype_params.get("boundary", ""), limit)
    except RequestEntityTooLarge:
        raise too_large(limit) from None
    except ValueError:
        raise BadRequest("the body is not valid multipart/form-data") from None
    if form.file is None:
        raise InvalidInput("invalid input", [{"field": FILE_FIELD, "message": "missing file"}])
    fields = {name: value for name, value in form.fields.items() if name in model.model_fields}
    return Upload(parse(model, query_fields(model, fields)), form.file)


def parse_query(model: type[BaseModel]) -> BaseModel:
    """The query string as ``model``; 422 names each bad parameter, and a rule of several
    (``from`` after ``to``) by the field ``query``, never ``body``: there is none."""
    try:
        return parse(model, query_fields(model))
    except InvalidInput as exc:
        details = [
            {**detail, "field": "query" if detail["field"] == "body" else detail["field"]}
            for detail in exc.details or []
        ]
        raise InvalidInput(exc.message, details) from None


def query_fields(model: type[BaseModel], source: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The string fields (query string by default) ``model`` knows, integers converted;
    422 lists every bad one."""
    source = request.args if source is None else source
    values: dict[str, Any] = {}
    details: list[dict[str, str]] = []
    for field_name, field in model.model_fields.items():
        name = field.alias or field_name  # the name on the wire ("from" for ``from_``)
        raw = source.get(name)
        if raw is None:
            continue
        if not _is_int(field.annotation):
            values[name] = raw
        elif INTEGER.fullmatch(raw):
            values[name] = int(raw)
        else:
            details.append({"field": name, "message": "must be an integer"})
    if details:
        raise InvalidInput("invalid input", details)
    return values


def _is_int(annotation: Any) -> bool:
    """int, or an optional int, constrained (``Annotated``) or not."""
    if get_origin(annotation) is Annotated:
        return _is_int(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return any(_is_int(arg) for arg in get_args(annotation))
    return annotation is int


def respond(spec: Endpoint, result: Any) -> Any:
    """A returned model becomes JSON with the declared status; anything else passes."""
    if spec.status == 204 and result is None:
        return Response(status=204)
    if isinstance(result, BaseModel):
        response = jsonify(result.model_dump(mode="json"))
        response.status_code = spec.status
        return response
    return result
