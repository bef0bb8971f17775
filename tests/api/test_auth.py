"""Login with a real password, ``/auth/me``, logout and every way to be refused (401)."""

from __future__ import annotations

from datetime import timedelta

from hotdesk.services.directory import UserInput, save_user
from tests.api.helpers import Api, expect, expect_invalid


def test_login_me_logout_with_a_real_password(api: Api) -> None:
    save_user(
        api.world.ctx,
        api.admin,
        UserInput(username="alice", password="correct horse", display_name="Alice A."),
    )
    body = expect(
        api.post("/auth/login", json={"username": "alice", "password": "correct horse"}), 200
    )
    assert body["token"].startswith("hd_") and body["token_type"] == "bearer"
    assert body["user"] == {
        "username": "alice",
        "role": "user",
        "tenant": "default",
        "display_name": "Alice A.",
    }
    assert api.world.clock is not None
    expected_expiry = api.world.clock.current + timedelta(hours=12)
    assert body["expires_at"].startswith(expected_expiry.strftime("%Y-%m-%dT%H:%M:%S"))
    auth = {"Authorization": f"Bearer {body['token']}"}

    assert expect(api.get("/auth/me", headers=auth), 200)["username"] == "alice"
    assert api.post("/auth/logout", headers=auth).status_code == 204
    gone = api.get("/auth/me", headers=auth)
    assert gone.status_code == 401 and gone.headers["WWW-Authenticate"] == "Bearer"

    for wrong in (
        {"username": "alice", "password": "wrong password"},
        {"username": "nobody", "password": "correct horse"},
        {"tenant": "other", "username": "alice", "password": "correct horse"},
    ):
        refused = api.post("/auth/login", json=wrong)
        assert refused.status_code == 401, wrong
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert "token" not in refused.json()


def test_login_rejects_malformed_bodies(api: Api) -> None:
    expect_invalid(api.post("/auth/login", json={"password": "x"}), "username")
    expect_invalid(api.post("/auth/login", json={"username": "a", "password": ""}), "password")
    expect_invalid(api.post("/auth/login", json={"username": 5, "password": "x"}), "username")
    expect_invalid(
        api.post("/auth/login", json={"username": "a", "password": "x", "admin": True}), "admin"
    )
    malformed = api.post(
        "/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    expect_invalid(malformed, "body")


def test_requests_without_a_valid_token_get_401(api: Api) -> None:
    alice = api.world.user("alice")
    token = api.world.token(alice)
    cases = {
        "none": {},
        "empty bearer": {"Authorization": "Bearer "},
        "unknown token": {"Authorization": "Bearer hd_not-a-real-token"},
        "wrong scheme": {"Authorization": f"Basic {token}"},
    }
    for label, headers in cases.items():
        for path in ("/auth/me", "/me/pools", "/pools"):
            answer = api.get(path, headers=headers)
            assert answer.status_code == 401, (label, path, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert answer.json()["detail"]
    assert expect(api.get("/auth/me", headers={"Authorization": f"Bearer {token}"}), 200)


def test_expired_tokens_and_disabled_users_are_refused(api: Api) -> None:
    from hotdesk.services.auth import issue_token

    alice = api.world.user("alice")
    assert alice.user_id is not None and api.world.clock is not None
    short = issue_token(api.world.ctx, alice.user_id, ttl_hours=1)
    auth = {"Authorization": f"Bearer {short}"}
    assert api.get("/auth/me", headers=auth).status_code == 200
    api.world.clock.advance(3601)
    assert api.get("/auth/me", headers=auth).status_code == 401

    bob = api.world.user("bob")
    assert api.get("/auth/me", bob).status_code == 200
    assert api.delete("/users/bob", api.admin).status_code == 204
    assert api.get("/auth/me", bob).status_code == 401
