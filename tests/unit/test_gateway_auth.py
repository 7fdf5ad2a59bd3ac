"""Register, login, refresh rotation with reuse detection, logout, token tampering."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token, decode_token

from contracts.errors import InvalidInput, Unavailable
from gateway.auth import FAMILY_REVOKED_KEY, REVOKED_KEY, USED_KEY
from tests.unit.gateway_helpers import assert_error, bearer
from tests.unit.service_fakes import PASSWORD

# ----------------------------------------------------------------- register


def test_register_returns_201_without_password_or_admin_flag(client, fake_users):
    body = {"email": "Ada@Example.com", "password": PASSWORD, "name": "  Ada   Lovelace "}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 201
    data = response.get_json()
    assert set(data) == {"id", "email", "name", "role", "created_at"}
    assert data["email"] == "ada@example.com"
    assert data["name"] == "Ada Lovelace"
    assert data["role"] == "student"  # the default
    [stored] = fake_users.users.values()
    assert (stored.id, stored.email, stored.is_admin) == (data["id"], "ada@example.com", False)


def test_register_as_an_instructor_keeps_the_role(client, fake_users):
    body = {"email": "ian@example.com", "password": PASSWORD, "name": "Ian", "role": "instructor"}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 201 and response.get_json()["role"] == "instructor"
    assert fake_users.get_user(response.get_json()["id"]).role == "instructor"


@pytest.mark.parametrize("role", ["admin", "teacher", "", None, 1])
def test_register_with_another_role_is_422(client, fake_users, role):
    body = {"email": "eve@example.com", "password": PASSWORD, "name": "Eve", "role": role}
    details = assert_error(client.post("/api/auth/register", json=body), 422, "invalid_input")
    assert [d["field"] for d in details["details"]] == ["role"]
    assert fake_users.users == {}


def test_register_invalid_fields_give_422_with_one_detail_per_field(client, fake_users):
    body = {"email": "not-an-email", "password": "short", "name": ""}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    data = response.get_json()
    assert data["error"] == "invalid_input"
    assert {d["field"] for d in data["details"]} == {"email", "password", "name"}
    assert all(d["message"] for d in data["details"])
    assert fake_users.users == {}  # never reached the service


def test_register_wrong_types_and_unknown_fields_give_422(client):
    body = {"email": 42, "password": ["x"], "name": "Ada", "is_admin": True}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    fields = {d["field"] for d in response.get_json()["details"]}
    assert fields == {"email", "password", "is_admin"}


def test_register_invalid_input_from_the_service_keeps_its_details(client, fake_users, monkeypatch):
    def refuse(request):
        raise InvalidInput("invalid input", [{"field": "name", "message": "refused"}])

    monkeypatch.setattr(fake_users, "register", refuse)
    body = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert response.get_json()["details"] == [{"field": "name", "message": "refused"}]


def test_register_duplicate_email_is_409(client, register):
    register()
    body = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 409
    assert response.get_json()["error"] == "conflict"


# ----------------------------------------------------------------- login


def test_login_returns_a_bearer_pair(client, register, app):
    register()
    credentials = {"email": "ada@example.com", "password": PASSWORD}
    response = client.post("/api/auth/login", json=credentials)
    assert response.status_code == 200
    data = response.get_json()
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()
    with app.app_context():
        access = decode_token(data["access_token"])
        refresh = decode_token(data["refresh_token"])
    assert access["sub"] == "1" and access["type"] == "access" and access["adm"] is False
    assert access["rol"] == "student"
    assert refresh["type"] == "refresh" and refresh["fam"] == access["fam"]
    assert "adm" not in refresh and "rol" not in refresh


def test_the_access_token_carries_the_users_role(client, login, app):
    pair = login("ian@example.com", role="instructor")
    with app.app_context():
        assert decode_token(pair["access_token"])["rol"] == "instructor"
    admin = login("root@example.com", admin=True)
    with app.app_context():
        claims = decode_token(admin["access_token"])
    assert (claims["rol"], claims["adm"]) == ("student", True)


def test_login_failure_is_one_generic_401(client, register):
    register()
    wrong_password = {"email": "ada@example.com", "password": "wrong password!"}
    unknown_user = {"email": "bob@example.com", "password": PASSWORD}
    first = client.post("/api/auth/login", json=wrong_password)
    second = client.post("/api/auth/login", json=unknown_user)
    assert first.status_code == second.status_code == 401
    assert first.get_json() == second.get_json()
    assert first.get_json()["error"] == "unauthorized"


def test_login_missing_fields_is_422(client):
    response = client.post("/api/auth/login", json={"email": "ada@example.com"})
    assert response.status_code == 422
    assert response.get_json()["details"][0]["field"] == "password"


# ----------------------------------------------------------------- refresh


def test_refresh_rotates_the_pair_in_the_same_family(client, login, app, fake_redis):
    pair = login()
    response = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"]))
    assert response.status_code == 200
    new = response.get_json()
    assert new["refresh_token"] != pair["refresh_token"]
    with app.app_context():
        old_claims = decode_token(pair["refresh_token"])
        new_claims = decode_token(new["refresh_token"])
    assert new_claims["fam"] == old_claims["fam"]
    assert fake_redis.get(USED_KEY.format(jti=old_claims["jti"])) == "1"
    assert 0 < fake_redis.ttl(USED_KEY.format(jti=old_claims["jti"])) <= 14 * 24 * 3600
    assert client.get("/api/users/me", headers=bearer(new["access_token"])).status_code == 200


def test_reused_refresh_token_is_401_and_revokes_the_whole_family(client, login, app, fake_redis):
    pair = login()
    rotated = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"])).get_json()

    replay = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"]))

    assert replay.status_code == 401
    with app.app_context():
        family = decode_token(pair["refresh_token"])["fam"]
    assert fake_redis.exists(FAMILY_REVOKED_KEY.format(fam=family)) == 1
    for token in (rotated["access_token"], pair["access_token"]):
        assert client.get("/api/users/me", headers=bearer(token)).status_code == 401
    again = client.post("/api/auth/refresh", headers=bearer(rotated["refresh_token"]))
    assert again.status_code == 401


def test_another_login_is_not_revoked_by_a_replay(client, login):
    victim = login()
    other = login()
    client.post("/api/auth/refresh", headers=bearer(victim["refresh_token"]))
    client.post("/api/auth/refresh", headers=bearer(victim["refresh_token"]))
    assert client.get("/api/users/me", headers=bearer(other["access_token"])).status_code == 200


def test_refresh_refuses_an_access_token(client, login):
    pair = login()
    response = client.post("/api/auth/refresh", headers=bearer(pair["access_token"]))
    assert response.status_code == 401


def test_access_refuses_a_refresh_token(client, login):
    pair = login()
    response = client.get("/api/users/me", headers=bearer(pair["refresh_token"]))
    assert response.status_code == 401


def test_refresh_when_the_service_is_down_does_not_burn_the_token(
    client, login, fake_users, monkeypatch
):
    pair = login()

    def down(_user_id):
        raise Unavailable("service users did not answer")

    refresh = bearer(pair["refresh_token"])
    with monkeypatch.context() as patch:
        patch.setattr(fake_users, "get_user", down)
        assert_error(client.post("/api/auth/refresh", headers=refresh), 503, "unavailable")
    assert client.post("/api/auth/refresh", headers=refresh).status_code == 200


def test_refresh_of_a_deleted_account_is_401_and_revokes_the_login(
    client, login, fake_users, app, fake_redis
):
    pair = login()
    fake_users.users.clear()
    response = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"]))
    assert assert_error(response, 401, "unauthorized")["message"] == "the account no longer exists"
    with app.app_context():
        family = decode_token(pair["refresh_token"])["fam"]
    assert fake_redis.exists(FAMILY_REVOKED_KEY.format(fam=family)) == 1


def test_refresh_gives_the_current_role_and_admin_flag(client, login, fake_users, app):
    pair = login()
    fake_users.promote_admin("ada@example.com")
    rotated = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"])).get_json()
    with app.app_context():
        assert decode_token(rotated["access_token"])["adm"] is True


# ----------------------------------------------------------------- logout


def test_logout_revokes_the_access_and_the_refresh_token(client, login, app, fake_redis):
    pair = login()
    response = client.post("/api/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    with app.app_context():
        jti = decode_token(pair["access_token"])["jti"]
    assert fake_redis.exists(REVOKED_KEY.format(jti=jti)) == 1
    me = client.get("/api/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 401
    assert me.get_json() == {"error": "unauthorized", "message": "token has been revoked"}
    refresh = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"]))
    assert refresh.status_code == 401


# ----------------------------------------------------------------- bad tokens


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_missing_token_is_401_in_our_format(client):
    response = client.get("/api/users/me")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_tampered_token_is_401(client, login):
    token = login(admin=False)["access_token"]
    header, _, signature = token.split(".")
    claims = _claims(token) | {"adm": True, "sub": "2"}
    response = client.get("/api/users/me", headers=bearer(f"{header}.{_b64(claims)}.{signature}"))
    assert response.status_code == 401
    assert response.get_json()["message"] == "invalid token"


def test_alg_none_token_is_401(client, login):
    claims = _claims(login()["access_token"]) | {"adm": True}
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    response = client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 401
    response = client.get("/api/users/me", headers=bearer(token.rstrip(".")))
    assert response.status_code == 401


def test_token_signed_with_another_secret_is_401(client, login):
    import jwt

    claims = _claims(login()["access_token"])
    forged = jwt.encode(claims, "another-secret-of-at-least-32-bytes!!", algorithm="HS256")
    assert client.get("/api/users/me", headers=bearer(forged)).status_code == 401


def test_expired_token_is_401(client, login, app):
    login()
    with app.app_context():
        token = create_access_token(
            "1", expires_delta=timedelta(seconds=-5), additional_claims={"fam": "f", "adm": False}
        )
    response = client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["message"] == "token has expired"


def test_garbage_authorization_header_is_401(client):
    response = client.get("/api/users/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401
    response = client.get("/api/users/me", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
