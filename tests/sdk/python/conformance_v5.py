"""SDK conformance: drives a Tessera server with the official WorkOS Python SDK,
`workos` 5.x (the pydantic generation; pinned by scripts/install-sdks.sh), unchanged
but for the base URL.

    PYTHONPATH=/path/to/repo/.sdk/python-v5 \\
    TESSERA_BASE_URL=http://127.0.0.1:8080 TESSERA_API_KEY=sk_... \\
    TESSERA_CLIENT_ID=client_... python3 conformance_v5.py

Prints one line per check and finally `sdk-python-v5: N passed, M failed`; exits
non-zero when any check failed. Creates its own users (random emails), so it can
share a server with other suites; it deletes its main user at the end. The seed
checks need the user `user_01E4ZCR3C56J083X43JQXF3JK5` to exist (the test harness
inserts it) and enrol one factor for it.
"""

import base64
import importlib.metadata
import os
import re
import secrets
import sys
import traceback
from datetime import datetime
from typing import Any, Callable, List, Optional

from workos import WorkOSClient
from workos.exceptions import (
    AuthenticationException,
    BaseRequestException,
    NotFoundException,
)
from workos.types.mfa import (
    AuthenticationChallenge,
    AuthenticationFactorTotp,
    AuthenticationFactorTotpAndChallengeResponse,
    AuthenticationFactorTotpExtended,
    ExtendedTotpFactor,
    TotpFactor,
)
from workos.types.user_management import User

BASE_URL = os.environ.get("TESSERA_BASE_URL")
API_KEY = os.environ.get("TESSERA_API_KEY")
CLIENT_ID = os.environ.get("TESSERA_CLIENT_ID")
if not BASE_URL or not API_KEY or not CLIENT_ID:
    sys.exit(
        "conformance_v5.py: set TESSERA_BASE_URL, TESSERA_API_KEY and TESSERA_CLIENT_ID "
        "(the v5 SDK requires a client id)"
    )

SEED_USER = "user_01E4ZCR3C56J083X43JQXF3JK5"
NONEXISTENT_USER = "user_01XXXXXXXXXXXXXXXXXXXXXXXX"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
BASE32_SECRET = re.compile(r"^[A-Z2-7]{32}$")
ULID = "[0-9A-HJKMNP-TV-Z]{26}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def client(api_key: str) -> WorkOSClient:
    return WorkOSClient(api_key=api_key, client_id=CLIENT_ID, base_url=BASE_URL)


workos_client = client(API_KEY)

passed = 0
failed = 0


class WrongOutcome(AssertionError):
    """An expected exception did not happen (or another one did)."""


def describe(err: BaseException) -> str:
    if isinstance(err, WrongOutcome):
        return str(err)
    if isinstance(err, AssertionError):
        frame = traceback.extract_tb(err.__traceback__)[-1]
        return f"assertion failed at line {frame.lineno}: {frame.line}" + (f" -- {err}" if str(err) else "")
    if isinstance(err, BaseRequestException):
        return (
            f"{type(err).__name__}: status={err.response.status_code} "
            f"body={err.response.text!r}"
        )
    return f"{type(err).__name__}: {err}"


def check(name: str) -> Callable[[Callable[[], None]], None]:
    """Decorator: runs the function at once as one named check."""

    def run(fn: Callable[[], None]) -> None:
        global passed, failed
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {name}: {describe(err)}", flush=True)
        else:
            passed += 1
            print(f"ok   {name}", flush=True)

    return run


def need(value: Any, what: str) -> Any:
    if value is None:
        raise RuntimeError(f"precondition failed: no {what} (an earlier check failed)")
    return value


def expect_raises(exc_type: type, fn: Callable[[], Any]) -> BaseException:
    try:
        result = fn()
    except exc_type as err:
        return err
    except BaseException as err:  # noqa: BLE001
        raise WrongOutcome(f"expected {exc_type.__name__}, got {describe(err)}") from err
    raise WrongOutcome(f"expected {exc_type.__name__}, got a result: {result!r}")


def millis(ts: str) -> int:
    return round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def raw_get(path: str) -> Any:
    """Raw JSON through the SDK's own HTTP client: pydantic drops unknown keys, so a
    secret leaking into a list would be invisible in the parsed models."""
    return workos_client._http_client.request(path, method="get")


suffix = secrets.token_hex(6)
email = f"sdk-py5-{suffix}@example.com"
password = f"Tessera-{secrets.token_urlsafe(9)}-9!"

state: dict = {"user": None, "factor_ids": []}

print(
    f"sdk-python-v5: workos {importlib.metadata.version('workos')} against {BASE_URL}",
    flush=True,
)


# ------------------------------------------------------------------ users
@check("user_management.create_user returns the new user")
def _() -> None:
    user = workos_client.user_management.create_user(
        email=email, password=password, first_name="Bob", last_name="Loblaw"
    )
    state["user"] = user
    assert isinstance(user, User)
    assert user.object == "user"
    assert re.match(f"^user_{ULID}$", user.id), user.id
    assert user.email == email
    assert user.email_verified is False
    assert user.first_name == "Bob"
    assert user.last_name == "Loblaw"
    assert isinstance(user.created_at, str)
    assert TIMESTAMP.match(user.created_at), user.created_at
    assert TIMESTAMP.match(user.updated_at), user.updated_at


@check("user_management.get_user returns the same user")
def _() -> None:
    user = need(state["user"], "user")
    got = workos_client.user_management.get_user(user.id)
    assert got.id == user.id
    assert got.email == email
    assert got.email_verified is False
    assert got.first_name == "Bob"
    assert got.last_name == "Loblaw"
    assert got.created_at == user.created_at


@check("user_management.update_user changes first_name only")
def _() -> None:
    user = need(state["user"], "user")
    updated = workos_client.user_management.update_user(user_id=user.id, first_name="Robert")
    assert updated.id == user.id
    assert updated.first_name == "Robert"
    assert updated.last_name == "Loblaw"
    assert updated.email == email
    assert workos_client.user_management.get_user(user.id).first_name == "Robert"


@check("user_management.list_users(email=...) finds the user")
def _() -> None:
    user = need(state["user"], "user")
    page = workos_client.user_management.list_users(email=email)
    assert page.object == "list"
    assert [u.id for u in page.data] == [user.id]
    assert page.data[0].first_name == "Robert"
    assert page.list_metadata.after is None
    assert [u.id for u in page] == [user.id]  # iteration (auto-pagination) ends


# ------------------------------------------------------------------ MFA enrolment
@check("user_management.enroll_auth_factor (totp_issuer/totp_user) returns factor + challenge")
def _() -> None:
    user = need(state["user"], "user")
    res = workos_client.user_management.enroll_auth_factor(
        user_id=user.id, type="totp", totp_issuer="Foo Corp", totp_user="bob@example.com"
    )
    assert isinstance(res, AuthenticationFactorTotpAndChallengeResponse)
    factor = res.authentication_factor
    challenge = res.authentication_challenge
    state["factor_ids"].append(factor.id)
    assert isinstance(factor, AuthenticationFactorTotpExtended)
    assert isinstance(factor.totp, ExtendedTotpFactor)
    assert factor.object == "authentication_factor"
    assert re.match(f"^auth_factor_{ULID}$", factor.id), factor.id
    assert factor.type == "totp"
    assert factor.user_id == user.id
    assert TIMESTAMP.match(factor.created_at) and TIMESTAMP.match(factor.updated_at)
    assert factor.totp.issuer == "Foo Corp"
    assert factor.totp.user == "bob@example.com"
    assert factor.totp.qr_code.startswith("data:image/png;base64,"), factor.totp.qr_code[:40]
    png = base64.b64decode(factor.totp.qr_code[len("data:image/png;base64,"):])
    assert png[:8] == PNG_SIGNATURE, "qr_code is a PNG"
    secret = factor.totp.secret
    assert BASE32_SECRET.match(secret), secret
    assert factor.totp.uri == (
        f"otpauth://totp/Foo%20Corp:bob@example.com?secret={secret}"
        "&issuer=Foo%20Corp&algorithm=SHA1&digits=6&period=30"
    ), factor.totp.uri

    assert isinstance(challenge, AuthenticationChallenge)
    assert challenge.object == "authentication_challenge"
    assert re.match(f"^auth_challenge_{ULID}$", challenge.id), challenge.id
    assert challenge.authentication_factor_id == factor.id
    assert challenge.code is None, "a TOTP challenge carries no code"
    assert TIMESTAMP.match(challenge.created_at), challenge.created_at
    assert challenge.expires_at is not None and TIMESTAMP.match(challenge.expires_at), challenge.expires_at
    assert millis(challenge.expires_at) - millis(challenge.created_at) == 600_000


@check("user_management.enroll_auth_factor without issuer/user defaults totp.user to the email")
def _() -> None:
    user = need(state["user"], "user")
    res = workos_client.user_management.enroll_auth_factor(user_id=user.id, type="totp")
    factor = res.authentication_factor
    state["factor_ids"].append(factor.id)
    assert factor.type == "totp"
    assert factor.user_id == user.id
    assert factor.totp.user == email
    assert isinstance(factor.totp.issuer, str) and factor.totp.issuer, factor.totp.issuer
    assert BASE32_SECRET.match(factor.totp.secret), factor.totp.secret
    assert factor.totp.uri.startswith("otpauth://totp/"), factor.totp.uri
    assert f"secret={factor.totp.secret}" in factor.totp.uri, factor.totp.uri
    assert email in factor.totp.uri, factor.totp.uri
    assert res.authentication_challenge.authentication_factor_id == factor.id


@check("user_management.enroll_auth_factor for an unknown user raises NotFoundException")
def _() -> None:
    err = expect_raises(
        NotFoundException,
        lambda: workos_client.user_management.enroll_auth_factor(user_id=NONEXISTENT_USER, type="totp"),
    )
    assert err.response.status_code == 404


# ------------------------------------------------------------------ MFA listing
@check("user_management.list_auth_factors lists the enrolled factors")
def _() -> None:
    user = need(state["user"], "user")
    page = workos_client.user_management.list_auth_factors(user_id=user.id)
    assert page.object == "list"
    assert len(page.data) == len(state["factor_ids"]), [f.id for f in page.data]
    assert {f.id for f in page.data} == set(state["factor_ids"])
    for f in page.data:
        assert isinstance(f, AuthenticationFactorTotp), type(f)
        assert type(f.totp) is TotpFactor, type(f.totp)
        assert f.object == "authentication_factor"
        assert f.type == "totp"
        assert f.user_id == user.id
        assert not hasattr(f.totp, "secret")
    assert page.list_metadata.after is None


@check("GET auth_factors on the wire carries no secret, qr_code or uri")
def _() -> None:
    user = need(state["user"], "user")
    body = raw_get(f"user_management/users/{user.id}/auth_factors")
    assert body["object"] == "list"
    assert len(body["data"]) == len(state["factor_ids"])
    for f in body["data"]:
        assert sorted(f["totp"].keys()) == ["issuer", "user"], f["totp"]
    assert body["list_metadata"]["after"] is None


@check("enrol up to 12 factors")
def _() -> None:
    user = need(state["user"], "user")
    ids: List[str] = state["factor_ids"]
    while len(ids) < 12:
        res = workos_client.user_management.enroll_auth_factor(
            user_id=user.id,
            type="totp",
            totp_issuer="Foo Corp",
            totp_user=f"bob+{len(ids)}@example.com",
        )
        ids.append(res.authentication_factor.id)
    assert len(set(ids)) == 12


@check("list_auth_factors pages by limit=5 through list_metadata.after (5+5+2)")
def _() -> None:
    user = need(state["user"], "user")
    sizes: List[int] = []
    seen: list = []
    after: Optional[str] = None
    for _page in range(10):
        page = workos_client.user_management.list_auth_factors(user_id=user.id, limit=5, after=after)
        sizes.append(len(page.data))
        seen.extend(page.data)
        after = page.list_metadata.after
        if after is None:
            break
    assert sizes == [5, 5, 2], sizes
    assert {f.id for f in seen} == set(state["factor_ids"])
    assert len({f.id for f in seen}) == 12
    created = [f.created_at for f in seen]
    assert created == sorted(created, reverse=True), "default order is desc"


@check("list_auth_factors(limit=5) auto-paginates over all 12 factors")
def _() -> None:
    user = need(state["user"], "user")
    page = workos_client.user_management.list_auth_factors(user_id=user.id, limit=5)
    assert len(page.data) == 5
    assert page.list_metadata.after is not None
    # v5 auto-paginates by iterating the list resource (first page, then pages of 10).
    ids = [f.id for f in page]
    assert len(ids) == 12, ids
    assert set(ids) == set(state["factor_ids"])


# ------------------------------------------------------------------ errors
@check("user_management.get_user(unknown id) raises NotFoundException")
def _() -> None:
    err = expect_raises(NotFoundException, lambda: workos_client.user_management.get_user(NONEXISTENT_USER))
    assert err.response.status_code == 404
    assert err.code == "entity_not_found", err.response_json
    assert re.search("not found", err.message, re.I), err.message


@check("a client with a wrong API key is rejected with AuthenticationException")
def _() -> None:
    user = need(state["user"], "user")
    bad = client(f"sk_test_wrong_{suffix}")
    err = expect_raises(AuthenticationException, lambda: bad.user_management.get_user(user.id))
    assert err.response.status_code == 401
    expect_raises(AuthenticationException, lambda: bad.user_management.list_users(email=email))
    expect_raises(
        AuthenticationException,
        lambda: bad.user_management.enroll_auth_factor(user_id=user.id, type="totp"),
    )


# ------------------------------------------------------------------ the seed's sample
@check("seed sample: enroll_auth_factor for user_01E4ZCR3C56J083X43JQXF3JK5")
def _() -> None:
    # The seed's Python sample, with the client pointed at Tessera: the sample's
    # hard-coded key/client id are replaced by the server's.
    factor_and_challenge = workos_client.user_management.enroll_auth_factor(
        user_id="user_01E4ZCR3C56J083X43JQXF3JK5",
        type="totp",
        totp_issuer="WorkOS",
        totp_user="bob@example.com",
    )
    assert isinstance(factor_and_challenge, AuthenticationFactorTotpAndChallengeResponse)
    factor = factor_and_challenge.authentication_factor
    challenge = factor_and_challenge.authentication_challenge
    assert isinstance(factor, AuthenticationFactorTotpExtended)
    assert isinstance(factor.totp, ExtendedTotpFactor)
    assert isinstance(challenge, AuthenticationChallenge)
    assert factor.user_id == SEED_USER
    assert factor.totp.issuer == "WorkOS"
    assert factor.totp.user == "bob@example.com"
    assert factor.totp.uri == (
        f"otpauth://totp/WorkOS:bob@example.com?secret={factor.totp.secret}"
        "&issuer=WorkOS&algorithm=SHA1&digits=6&period=30"
    ), factor.totp.uri
    assert challenge.authentication_factor_id == factor.id
    state["seed_factor_id"] = factor.id


@check("seed sample: list_auth_factors for user_01E4ZCR3C56J083X43JQXF3JK5")
def _() -> None:
    seed_factor_id = need(state.get("seed_factor_id"), "seed factor")
    auth_factors = workos_client.user_management.list_auth_factors(
        user_id="user_01E4ZCR3C56J083X43JQXF3JK5"
    )
    ids = [f.id for f in auth_factors]  # all pages
    assert seed_factor_id in ids, ids
    for f in auth_factors.data:
        assert isinstance(f, AuthenticationFactorTotp), type(f)
        assert f.user_id == SEED_USER


# ------------------------------------------------------------------ deletion
@check("user_management.delete_user returns None, then get_user raises NotFoundException")
def _() -> None:
    user = need(state["user"], "user")
    assert workos_client.user_management.delete_user(user.id) is None
    expect_raises(NotFoundException, lambda: workos_client.user_management.get_user(user.id))
    assert workos_client.user_management.list_users(email=email).data == []


print(f"sdk-python-v5: {passed} passed, {failed} failed", flush=True)
sys.exit(0 if failed == 0 else 1)
