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
import hashlib
import hmac
import importlib.metadata
import json
import os
import re
import secrets
import sys
import struct
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any, Callable, List, Optional, Tuple

import jwt  # PyJWT: a dependency of the v5 SDK, installed with it
from cryptography.fernet import Fernet  # also a dependency of the v5 SDK (sealed sessions)
from workos import WorkOSClient
from workos.exceptions import (
    AuthenticationException,
    AuthorizationException,
    BadRequestException,
    BaseRequestException,
    NotFoundException,
)
from workos.types.mfa import (
    AuthenticationChallenge,
    AuthenticationChallengeVerificationResponse,
    AuthenticationFactorSms,
    AuthenticationFactorTotp,
    AuthenticationFactorTotpAndChallengeResponse,
    AuthenticationFactorTotpExtended,
    ExtendedTotpFactor,
    TotpFactor,
)
from workos.types.user_management import (
    AuthenticationResponse,
    RefreshTokenAuthenticationResponse,
    User,
)
from workos.types.user_management.session import (
    AuthenticateWithSessionCookieErrorResponse,
    AuthenticateWithSessionCookieSuccessResponse,
    RefreshWithSessionCookieErrorResponse,
    RefreshWithSessionCookieSuccessResponse,
)

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


# ------------------------------------------------------------------ standalone MFA API
# client.mfa.*: /auth/factors/enroll, /auth/factors/:id, /auth/factors/:id/challenge,
# /auth/challenges/:id/verify. Factors here belong to no user. The server allows 10
# failed verifications per factor per 15 minutes (and the CI server's clock is frozen, so
# that window never passes): every check with wrong codes uses its own factor.
#
# v5 limits worked around with plain HTTP: `mfa.enroll_factor(type="generic_otp")` sends
# the request but then parses the answer as an SMS factor (pydantic ValidationError), and
# `mfa.get_factor` does the same for a generic_otp factor. Challenge/verify work through
# the SDK for every factor type.

NONEXISTENT_FACTOR = "auth_factor_01XXXXXXXXXXXXXXXXXXXXXXXX"
SIX_DIGITS = re.compile(r"^\d{6}$")


def raw_http(method: str, path: str, body: Any = None) -> Tuple[int, Any]:
    """A plain HTTP request (urllib, not the SDK) with the API key: (status, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        BASE_URL.rstrip("/") + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {API_KEY}",
            "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    return status, (json.loads(text) if text else None)


def raw_enroll_generic_otp() -> dict:
    status, body = raw_http("POST", "/auth/factors/enroll", {"type": "generic_otp"})
    assert status == 201, (status, body)
    return body


def totp_code(secret: str, unix_seconds: float) -> str:
    """RFC 6238 TOTP: HMAC-SHA-1, 6 digits, 30 s steps."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = struct.pack(">Q", int(unix_seconds // 30))
    mac = hmac.new(key, counter, hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    n = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{n:06d}"


def server_seconds(challenge: AuthenticationChallenge) -> float:
    """The server's clock is not necessarily ours (CI freezes it): take the time from the
    created_at of a challenge the server has just made."""
    return millis(challenge.created_at) / 1000


def other_code(code: str, k: int = 1) -> str:
    return f"{(int(code) + k) % 1_000_000:06d}"


def assert_challenge(challenge: Any, factor_id: str) -> None:
    assert isinstance(challenge, AuthenticationChallenge), type(challenge)
    assert challenge.object == "authentication_challenge"
    assert re.match(f"^auth_challenge_{ULID}$", challenge.id), challenge.id
    assert challenge.authentication_factor_id == factor_id
    assert TIMESTAMP.match(challenge.created_at), challenge.created_at
    assert TIMESTAMP.match(challenge.updated_at), challenge.updated_at
    assert challenge.expires_at is not None and TIMESTAMP.match(challenge.expires_at), challenge.expires_at


mfa: dict = {}


@check("mfa.enroll_factor totp (issuer/user) returns the factor with qr_code/secret/uri")
def _() -> None:
    factor = workos_client.mfa.enroll_factor(
        type="totp", totp_issuer="Foo Corp", totp_user="alice@example.com"
    )
    assert isinstance(factor, AuthenticationFactorTotpExtended), type(factor)
    assert isinstance(factor.totp, ExtendedTotpFactor), type(factor.totp)
    assert factor.object == "authentication_factor"
    assert re.match(f"^auth_factor_{ULID}$", factor.id), factor.id
    assert factor.type == "totp"
    assert TIMESTAMP.match(factor.created_at) and TIMESTAMP.match(factor.updated_at)
    assert factor.totp.issuer == "Foo Corp"
    assert factor.totp.user == "alice@example.com"
    assert factor.totp.qr_code.startswith("data:image/png;base64,"), factor.totp.qr_code[:40]
    png = base64.b64decode(factor.totp.qr_code[len("data:image/png;base64,"):])
    assert png[:8] == PNG_SIGNATURE, "qr_code is a PNG"
    assert BASE32_SECRET.match(factor.totp.secret), factor.totp.secret
    assert factor.totp.uri.startswith("otpauth://totp/Foo%20Corp:alice@example.com?"), factor.totp.uri
    assert f"secret={factor.totp.secret}" in factor.totp.uri, factor.totp.uri
    mfa["totp"] = factor


@check("mfa.get_factor returns the totp factor without secrets")
def _() -> None:
    enrolled = need(mfa.get("totp"), "totp factor")
    factor = workos_client.mfa.get_factor(enrolled.id)
    assert isinstance(factor, AuthenticationFactorTotp), type(factor)
    assert type(factor.totp) is TotpFactor, type(factor.totp)
    assert factor.id == enrolled.id
    assert factor.type == "totp"
    assert factor.created_at == enrolled.created_at
    assert factor.totp.issuer == "Foo Corp"
    assert factor.totp.user == "alice@example.com"


@check("GET /auth/factors/:id on the wire carries no secret, qr_code or uri")
def _() -> None:
    # pydantic drops unknown keys, so look at the raw JSON (plain urllib).
    enrolled = need(mfa.get("totp"), "totp factor")
    status, body = raw_http("GET", f"/auth/factors/{enrolled.id}")
    assert status == 200, (status, body)
    assert body["object"] == "authentication_factor"
    assert body["id"] == enrolled.id
    assert body["type"] == "totp"
    assert body["totp"] == {"issuer": "Foo Corp", "user": "alice@example.com"}, body
    assert enrolled.totp.secret not in json.dumps(body), "secret leaked"


@check("mfa.enroll_factor sms (+15555550100) returns the factor with sms.phone_number")
def _() -> None:
    factor = workos_client.mfa.enroll_factor(type="sms", phone_number="+15555550100")
    assert isinstance(factor, AuthenticationFactorSms), type(factor)
    assert factor.object == "authentication_factor"
    assert re.match(f"^auth_factor_{ULID}$", factor.id), factor.id
    assert factor.type == "sms"
    assert factor.sms.phone_number == "+15555550100"
    got = workos_client.mfa.get_factor(factor.id)
    assert isinstance(got, AuthenticationFactorSms), type(got)
    assert got.sms.phone_number == "+15555550100"
    mfa["sms"] = factor


@check("mfa.enroll_factor sms (not-a-phone) raises BadRequestException (422 invalid_phone_number)")
def _() -> None:
    # v5 maps every 4xx but 401/403/404/409 to BadRequestException.
    err = expect_raises(
        BadRequestException,
        lambda: workos_client.mfa.enroll_factor(type="sms", phone_number="not-a-phone"),
    )
    assert err.response.status_code == 422
    assert err.code == "invalid_phone_number", err.response_json


@check("enroll generic_otp (plain HTTP: v5 cannot parse it) returns a factor with neither totp nor sms")
def _() -> None:
    body = raw_enroll_generic_otp()
    assert body["object"] == "authentication_factor"
    assert re.match(f"^auth_factor_{ULID}$", body["id"]), body
    assert body["type"] == "generic_otp"
    assert "totp" not in body and "sms" not in body, body
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"]), body
    status, got = raw_http("GET", f"/auth/factors/{body['id']}")
    assert status == 200 and got["type"] == "generic_otp", (status, got)
    mfa["otp_id"] = body["id"]


@check("mfa.challenge_factor generic_otp returns a challenge with a 6-digit code")
def _() -> None:
    factor_id = need(mfa.get("otp_id"), "generic_otp factor")
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor_id)
    assert_challenge(challenge, factor_id)
    assert challenge.code is not None and SIX_DIGITS.match(challenge.code), challenge.code
    assert millis(challenge.expires_at) - millis(challenge.created_at) == 600_000
    mfa["otp_challenge"] = challenge


@check("mfa.verify_challenge with a wrong code returns valid=False")
def _() -> None:
    challenge = need(mfa.get("otp_challenge"), "generic_otp challenge")
    res = workos_client.mfa.verify_challenge(
        authentication_challenge_id=challenge.id, code=other_code(challenge.code)
    )
    assert isinstance(res, AuthenticationChallengeVerificationResponse), type(res)
    assert res.valid is False
    assert res.challenge.id == challenge.id
    assert res.challenge.authentication_factor_id == challenge.authentication_factor_id


@check("mfa.verify_challenge with the right code returns valid=True")
def _() -> None:
    challenge = need(mfa.get("otp_challenge"), "generic_otp challenge")
    res = workos_client.mfa.verify_challenge(
        authentication_challenge_id=challenge.id, code=challenge.code
    )
    assert res.valid is True
    assert res.challenge.object == "authentication_challenge"
    assert res.challenge.id == challenge.id
    mfa["otp_verified"] = True


@check("mfa.verify_challenge again raises BadRequestException (422 authentication_challenge_previously_verified)")
def _() -> None:
    need(mfa.get("otp_verified"), "verified challenge")
    challenge = mfa["otp_challenge"]
    err = expect_raises(
        BadRequestException,
        lambda: workos_client.mfa.verify_challenge(
            authentication_challenge_id=challenge.id, code=challenge.code
        ),
    )
    assert err.response.status_code == 422
    assert err.code == "authentication_challenge_previously_verified", err.response_json


@check("mfa.challenge_factor totp + verify_challenge with the current TOTP code returns valid=True")
def _() -> None:
    factor = need(mfa.get("totp"), "totp factor")
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor.id)
    assert_challenge(challenge, factor.id)
    assert challenge.code is None, "a TOTP challenge carries no code"
    code = totp_code(factor.totp.secret, server_seconds(challenge))
    res = workos_client.mfa.verify_challenge(authentication_challenge_id=challenge.id, code=code)
    assert res.valid is True, f"code {code} for server time {challenge.created_at}"
    assert res.challenge.id == challenge.id
    mfa["totp_used_code"] = code


@check("a new totp challenge verified with the same (already used) code returns valid=False")
def _() -> None:
    factor = need(mfa.get("totp"), "totp factor")
    code = need(mfa.get("totp_used_code"), "used TOTP code")
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor.id)
    assert_challenge(challenge, factor.id)
    res = workos_client.mfa.verify_challenge(authentication_challenge_id=challenge.id, code=code)
    assert res.valid is False, "a TOTP code is accepted once"
    assert res.challenge.id == challenge.id


@check("5 wrong codes, then the 6th attempt raises BadRequestException (400 one_time_code_too_many_attempts)")
def _() -> None:
    # A fresh factor: this check's 5 failures stay under the per-factor limit.
    factor_id = raw_enroll_generic_otp()["id"]
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor_id)
    assert challenge.code is not None and SIX_DIGITS.match(challenge.code), challenge.code
    for i in range(1, 6):
        res = workos_client.mfa.verify_challenge(
            authentication_challenge_id=challenge.id, code=other_code(challenge.code, i)
        )
        assert res.valid is False, f"wrong code #{i}"
    # Even the right code is refused now.
    err = expect_raises(
        BadRequestException,
        lambda: workos_client.mfa.verify_challenge(
            authentication_challenge_id=challenge.id, code=challenge.code
        ),
    )
    assert err.response.status_code == 400
    assert err.code == "one_time_code_too_many_attempts", err.response_json


@check("mfa.challenge_factor sms returns a challenge without a code")
def _() -> None:
    # The server sends at most 5 SMS per phone number per 10 minutes, so the challenged
    # factor gets a random number in the fictional +1 555-555-01xx range: repeated runs
    # against one server do not hit that limit.
    phone_number = f"+155555501{secrets.randbelow(100):02d}"
    factor = workos_client.mfa.enroll_factor(type="sms", phone_number=phone_number)
    assert factor.sms.phone_number == phone_number
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor.id)
    assert_challenge(challenge, factor.id)
    assert challenge.code is None, "an SMS challenge carries no code"
    workos_client.mfa.delete_factor(factor.id)


@check("mfa.delete_factor returns None, then get_factor raises NotFoundException")
def _() -> None:
    factor = need(mfa.get("sms"), "sms factor")
    assert workos_client.mfa.delete_factor(factor.id) is None
    err = expect_raises(NotFoundException, lambda: workos_client.mfa.get_factor(factor.id))
    assert err.response.status_code == 404
    assert err.code == "entity_not_found", err.response_json


@check("mfa.get_factor(unknown id) raises NotFoundException")
def _() -> None:
    err = expect_raises(NotFoundException, lambda: workos_client.mfa.get_factor(NONEXISTENT_FACTOR))
    assert err.response.status_code == 404
    assert err.code == "entity_not_found", err.response_json
    assert re.search("not found", err.message, re.I), err.message


# ------------------------------------------------------------------ sign-in
# POST /user_management/authenticate through user_management.authenticate_with_*. Every
# check signs in a fresh user (random email): each TOTP code is accepted once per factor,
# and the server throttles failed passwords per account.
#
# v5 maps a 403 to AuthorizationException (EmailVerificationRequiredException only for
# `email_verification_required`), with the body in `.response_json`; every other 4xx but
# 401/404/409 to BadRequestException (`.code` for code-style bodies, `.error` for OAuth-style
# ones).

signin: dict = {}
signin_password = f"Tessera-{secrets.token_urlsafe(9)}-9!"


def signin_user(tag: str) -> User:
    return workos_client.user_management.create_user(
        email=f"sdk-py5-{tag}-{suffix}@example.com", password=signin_password
    )


def jwt_part(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def verify_access_token(token: str) -> Tuple[dict, dict]:
    """The token must be an RS256 JWT whose `kid` is published at the SDK's JWKS URL
    (fetched without an API key) as a 2048-bit RSA key, and whose signature verifies with
    that key (PyJWT with `cryptography`, both dependencies of the SDK; the server's clock
    may be frozen, so no time claims are checked). Returns (header, claims)."""
    assert isinstance(token, str), type(token)
    parts = token.split(".")
    assert len(parts) == 3, f"a JWT has three parts: {token[:40]}"
    header, claims = jwt_part(parts[0]), jwt_part(parts[1])
    assert header.get("alg") == "RS256", header
    assert isinstance(header.get("kid"), str), header
    url = workos_client.user_management.get_jwks_url()
    assert url == f"{BASE_URL.rstrip('/')}/sso/jwks/{CLIENT_ID}", url
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.status == 200, res.status
        assert "application/json" in res.headers.get("Content-Type", ""), res.headers
        jwks = json.loads(res.read().decode())
    assert isinstance(jwks.get("keys"), list), jwks
    matching = [k for k in jwks["keys"] if k.get("kid") == header["kid"]]
    assert len(matching) == 1, f"kid {header['kid']} in JWKS {jwks}"
    jwk = matching[0]
    assert jwk.get("kty") == "RSA" and jwk.get("alg") == "RS256" and jwk.get("use") == "sig", jwk
    assert isinstance(jwk.get("n"), str) and isinstance(jwk.get("e"), str), jwk
    key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    assert key.key_size == 2048, key.key_size
    verified = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
    )
    assert verified == claims, (verified, claims)
    return header, claims


def assert_tokens(res: Any, user: User) -> None:
    assert isinstance(res, AuthenticationResponse), type(res)
    assert isinstance(res.user, User), type(res.user)
    assert res.user.id == user.id
    assert res.user.email == user.email
    assert res.user.last_sign_in_at is not None and TIMESTAMP.match(res.user.last_sign_in_at), res.user
    assert isinstance(res.access_token, str) and isinstance(res.refresh_token, str)
    assert len(res.refresh_token) >= 20, res.refresh_token
    assert res.refresh_token != res.access_token


@check("user_management.authenticate_with_password (user without factors) returns user, tokens, authentication_method Password")
def _() -> None:
    user = signin_user("pw")
    res = workos_client.user_management.authenticate_with_password(
        email=user.email, password=signin_password
    )
    assert_tokens(res, user)
    assert res.authentication_method == "Password", res.authentication_method
    assert res.organization_id is None
    assert res.impersonator is None
    signin["pw_user"] = user
    signin["pw"] = res


@check("the access token is an RS256 JWT (2048-bit RSA) whose kid is in GET /sso/jwks/:client_id (signature verified)")
def _() -> None:
    res = need(signin.get("pw"), "password sign-in")
    header, claims = verify_access_token(res.access_token)
    assert header.get("typ", "JWT") == "JWT", header
    assert claims["sub"] == signin["pw_user"].id, claims
    assert re.match(f"^session_{ULID}$", claims["sid"]), claims
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int), claims
    assert claims["exp"] > claims["iat"], claims
    # iat is the server's sign-in time, as is user.last_sign_in_at.
    assert claims["iat"] == millis(res.user.last_sign_in_at) // 1000, (claims, res.user.last_sign_in_at)
    signin["sid"] = claims["sid"]


# Sealed sessions: v5's helper (workos/session.py) verifies the access token with PyJWT
# against the JWKS, and only with the algorithms it hard-codes (`jwk_algorithms`, RS256).
# PyJWT checks `iat` and `exp` against this machine's clock (leeway: the client's
# `jwt_leeway`, 0 by default). A server with a frozen clock (sdk.rs: 2026-11-29T12:00:00Z,
# tokens valid 5 minutes) issues tokens this machine may see as issued in the future or as
# expired. The helper reports both as `invalid_jwt`, like a bad signature or algorithm, so
# then the check decodes the token exactly as the helper does to show that PyJWT raises
# that time error and nothing else, and that without the time checks the helper's key and
# algorithm list accept the token.

COOKIE_PASSWORD = Fernet.generate_key().decode()  # v5 seals with Fernet: the password is a Fernet key


def token_time_state(claims: dict, now: float, leeway: float) -> str:
    """What PyJWT's claim checks make of the token at `now` (iat first, then exp)."""
    if claims["iat"] > now + leeway:
        return "not_yet_valid"
    if claims["exp"] <= now - leeway:
        return "expired"
    return "valid"


TIME_ERRORS = {
    "not_yet_valid": (jwt.exceptions.ImmatureSignatureError, "The token is not yet valid (iat)"),
    "expired": (jwt.exceptions.ExpiredSignatureError, "Signature has expired"),
}


def sdk_decode(session: Any, token: str, **options: bool) -> dict:
    """jwt.decode as workos/session.py calls it, with the helper's own JWKS client,
    algorithm list and leeway; `options` may switch time checks off."""
    assert session.jwk_algorithms == ["RS256"], session.jwk_algorithms
    signing_key = session.jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=session.jwk_algorithms,
        options={"verify_aud": False, **options},
        leeway=session.jwt_leeway,
    )


def assert_time_rejection(session: Any, token: str, claims: dict) -> None:
    """The helper refused `token` only because of the machine's clock: decoded as the
    helper does, PyJWT raises exactly the time error the clock calls for (or, if the clock
    has just crossed into the token's lifetime, accepts it), and without time checks the
    helper's key and algorithms accept it."""
    before = time.time()
    try:
        decoded = sdk_decode(session, token)
        outcome: Any = "valid"
    except jwt.exceptions.PyJWTError as err:
        outcome = err
    states = sealed_states(claims, session.jwt_leeway, before, time.time())
    if outcome == "valid":
        assert "valid" in states, (states, decoded)
    else:
        expected = [TIME_ERRORS[s] for s in states if s in TIME_ERRORS]
        assert any(type(outcome) is t and str(outcome) == m for t, m in expected), (
            f"PyJWT raised {type(outcome).__name__}: {outcome} (clock: {sorted(states)})"
        )
    decoded = sdk_decode(session, token, verify_exp=False, verify_iat=False, verify_nbf=False)
    assert decoded == claims, (decoded, claims)


def sealed_states(claims: dict, leeway: float, before: float, after: float) -> set:
    """The states the token may have had while the helper ran (two only at a boundary)."""
    return {token_time_state(claims, before, leeway), token_time_state(claims, after, leeway)}


def sealed_sign_in(tag: str) -> Tuple[User, RefreshTokenAuthenticationResponse]:
    """A password sign-in, then a refresh that asks the SDK to seal the session."""
    user = signin_user(tag)
    first = workos_client.user_management.authenticate_with_password(
        email=user.email, password=signin_password
    )
    assert first.sealed_session is None  # v5's authenticate_with_password cannot seal
    res = workos_client.user_management.authenticate_with_refresh_token(
        refresh_token=first.refresh_token,
        session={"seal_session": True, "cookie_password": COOKIE_PASSWORD},
    )
    assert isinstance(res, RefreshTokenAuthenticationResponse), type(res)
    assert res.user.id == user.id
    assert isinstance(res.sealed_session, str) and res.sealed_session, res.sealed_session
    return user, res


@check("authenticate_with_refresh_token(session={seal_session}) + load_sealed_session().authenticate() verify the RS256 token through the SDK (PyJWT + JWKS)")
def _() -> None:
    user, res = sealed_sign_in("seal")
    _header, claims = verify_access_token(res.access_token)
    assert claims["sub"] == user.id, claims
    session = workos_client.user_management.load_sealed_session(
        sealed_session=res.sealed_session, cookie_password=COOKIE_PASSWORD
    )
    before = time.time()
    result = session.authenticate()
    after = time.time()
    states = sealed_states(claims, session.jwt_leeway, before, after)
    if states == {"valid"}:
        assert isinstance(result, AuthenticateWithSessionCookieSuccessResponse), result
        assert result.authenticated is True
        assert result.session_id == claims["sid"], (result.session_id, claims)
        assert isinstance(result.user, User) and result.user.id == user.id, result.user
        assert result.user.email == user.email, result.user
        assert result.organization_id is None and result.impersonator is None, result
    elif isinstance(result, AuthenticateWithSessionCookieSuccessResponse):
        assert "valid" in states, (states, result)  # the clock crossed a boundary meanwhile
    else:
        assert isinstance(result, AuthenticateWithSessionCookieErrorResponse), result
        assert result.authenticated is False
        assert getattr(result.reason, "value", result.reason) == "invalid_jwt", result.reason
        assert_time_rejection(session, res.access_token, claims)
    # The wrong cookie password: the helper cannot unseal the session.
    wrong = workos_client.user_management.load_sealed_session(
        sealed_session=res.sealed_session, cookie_password=Fernet.generate_key().decode()
    ).authenticate()
    assert isinstance(wrong, AuthenticateWithSessionCookieErrorResponse), wrong
    assert getattr(wrong.reason, "value", wrong.reason) == "invalid_session_cookie", wrong.reason


@check("load_sealed_session().refresh() rotates through the server and verifies the new RS256 token through the SDK")
def _() -> None:
    user, res = sealed_sign_in("sealrf")
    _header, first_claims = verify_access_token(res.access_token)
    session = workos_client.user_management.load_sealed_session(
        sealed_session=res.sealed_session, cookie_password=COOKIE_PASSWORD
    )
    before = time.time()
    result = session.refresh()
    after = time.time()
    # refresh() stores the new sealed session before it verifies the new token.
    assert session.session_data != res.sealed_session, "a new sealed session"
    sealed = session.unseal_data(session.session_data, COOKIE_PASSWORD)
    token = sealed["access_token"]
    assert sealed["refresh_token"] != res.refresh_token, "a new refresh token"
    _header, claims = verify_access_token(token)
    assert claims["sub"] == user.id and claims["sid"] == first_claims["sid"], (claims, first_claims)
    states = sealed_states(claims, session.jwt_leeway, before, after)
    if states == {"valid"}:
        assert isinstance(result, RefreshWithSessionCookieSuccessResponse), result
        assert result.authenticated is True
        assert result.session_id == claims["sid"], (result.session_id, claims)
        assert result.user.id == user.id, result.user
        assert result.sealed_session == session.session_data
    elif isinstance(result, RefreshWithSessionCookieSuccessResponse):
        assert "valid" in states, (states, result)
    else:
        assert isinstance(result, RefreshWithSessionCookieErrorResponse), result
        assert result.authenticated is False
        # refresh() reports the PyJWT error text itself.
        assert result.reason in [TIME_ERRORS[s][1] for s in states if s in TIME_ERRORS], (states, result.reason)
        assert_time_rejection(session, token, claims)


@check("user_management.authenticate_with_refresh_token rotates the refresh token; the new access token keeps the session")
def _() -> None:
    first = need(signin.get("pw"), "password sign-in")
    sid = need(signin.get("sid"), "session id")
    res = workos_client.user_management.authenticate_with_refresh_token(
        refresh_token=first.refresh_token
    )
    assert isinstance(res, RefreshTokenAuthenticationResponse), type(res)
    assert res.user.id == signin["pw_user"].id
    assert isinstance(res.access_token, str) and isinstance(res.refresh_token, str)
    assert res.refresh_token != first.refresh_token, "a new refresh token"
    _header, claims = verify_access_token(res.access_token)
    assert claims["sub"] == signin["pw_user"].id, claims
    assert claims["sid"] == sid, "same session"
    signin["refreshed"] = res


@check("a rotated refresh token presented again at once (a retry) gets the same tokens; from another API key it raises BadRequestException (400 invalid_grant) and revokes the session")
def _() -> None:
    first = need(signin.get("pw"), "password sign-in")
    second = need(signin.get("refreshed"), "refreshed tokens")
    other_key = need(os.environ.get("TESSERA_OTHER_API_KEY"), "TESSERA_OTHER_API_KEY")
    # The suite's server clock is frozen, so this is within the retry grace.
    retried = workos_client.user_management.authenticate_with_refresh_token(
        refresh_token=first.refresh_token
    )
    assert retried.refresh_token == second.refresh_token, "the same refresh token"
    assert retried.access_token == second.access_token, "the same access token"
    for who, token in ((client(other_key), first.refresh_token), (workos_client, second.refresh_token)):
        err = expect_raises(
            BadRequestException,
            lambda: who.user_management.authenticate_with_refresh_token(refresh_token=token),
        )
        assert err.response.status_code == 400
        assert err.error == "invalid_grant", err.response_json
        assert isinstance(err.response_json.get("error_description"), str), err.response_json


@check("authenticate_with_password with a wrong password or an unknown email raises BadRequestException (400 invalid_credentials)")
def _() -> None:
    user = need(signin.get("pw_user"), "password user")
    for address in (user.email, f"sdk-py5-nobody-{suffix}@example.com"):
        err = expect_raises(
            BadRequestException,
            lambda: workos_client.user_management.authenticate_with_password(
                email=address, password=signin_password + "x"
            ),
        )
        assert err.response.status_code == 400
        assert err.code == "invalid_credentials", err.response_json
        assert isinstance(err.response_json.get("message"), str), err.response_json


@check("authenticate_with_password (user with a TOTP factor) raises AuthorizationException (403 mfa_challenge)")
def _() -> None:
    user = signin_user("mfa")
    factor = workos_client.user_management.enroll_auth_factor(
        user_id=user.id, type="totp"
    ).authentication_factor
    assert BASE32_SECRET.match(factor.totp.secret), factor.totp.secret
    err = expect_raises(
        AuthorizationException,
        lambda: workos_client.user_management.authenticate_with_password(
            email=user.email, password=signin_password
        ),
    )
    assert type(err) is AuthorizationException, type(err)
    assert err.response.status_code == 403
    body = err.response_json
    assert body is not None and err.code == "mfa_challenge", body
    assert isinstance(body.get("message"), str) and err.message == body["message"], body
    pending = body.get("pending_authentication_token")
    assert isinstance(pending, str) and len(pending) >= 20, body
    assert body.get("authentication_factors") == [{"id": factor.id, "type": "totp"}], body
    parsed_user = User.model_validate(body["user"])  # the v5 model accepts the embedded user
    assert parsed_user.id == user.id and parsed_user.email == user.email, body["user"]
    signin["mfa_user"] = user
    signin["mfa_factor"] = factor
    signin["pending"] = pending


@check("authenticate_with_totp with a wrong code raises BadRequestException (400 invalid_one_time_code)")
def _() -> None:
    factor = need(signin.get("mfa_factor"), "TOTP factor")
    pending = need(signin.get("pending"), "pending authentication token")
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor.id)
    assert_challenge(challenge, factor.id)
    code = other_code(totp_code(factor.totp.secret, server_seconds(challenge)))
    err = expect_raises(
        BadRequestException,
        lambda: workos_client.user_management.authenticate_with_totp(
            code=code,
            pending_authentication_token=pending,
            authentication_challenge_id=challenge.id,
        ),
    )
    assert err.response.status_code == 400
    assert err.code == "invalid_one_time_code", err.response_json


@check("mfa.challenge_factor + authenticate_with_totp with the current code returns user and tokens")
def _() -> None:
    user = need(signin.get("mfa_user"), "MFA user")
    factor = need(signin.get("mfa_factor"), "TOTP factor")
    pending = need(signin.get("pending"), "pending authentication token")
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor.id)
    assert_challenge(challenge, factor.id)
    code = totp_code(factor.totp.secret, server_seconds(challenge))
    res = workos_client.user_management.authenticate_with_totp(
        code=code,
        pending_authentication_token=pending,
        authentication_challenge_id=challenge.id,
    )
    assert_tokens(res, user)
    assert res.authentication_method == "Password", res.authentication_method
    _header, claims = verify_access_token(res.access_token)
    assert claims["sub"] == user.id, claims
    assert re.match(f"^session_{ULID}$", claims["sid"]), claims
    signin["totp_code"] = code


@check("the used pending authentication token raises BadRequestException (400 invalid_pending_authentication_token)")
def _() -> None:
    factor = need(signin.get("mfa_factor"), "TOTP factor")
    code = need(signin.get("totp_code"), "TOTP sign-in")
    challenge = workos_client.mfa.challenge_factor(authentication_factor_id=factor.id)
    err = expect_raises(
        BadRequestException,
        lambda: workos_client.user_management.authenticate_with_totp(
            code=code,
            pending_authentication_token=signin["pending"],
            authentication_challenge_id=challenge.id,
        ),
    )
    assert err.response.status_code == 400
    assert err.code == "invalid_pending_authentication_token", err.response_json


@check("events.list_events parses Tessera's MFA and session events into the SDK's typed models")
def _() -> None:
    names = ["authentication.mfa_succeeded", "authentication.mfa_failed", "session.created", "session.revoked"]
    page = workos_client.events.list_events(events=names, limit=100)
    kinds = {type(e).__name__ for e in page.data}
    for want in ["AuthenticationMfaSucceededEvent", "AuthenticationMfaFailedEvent", "SessionCreatedEvent", "SessionRevokedEvent"]:
        assert want in kinds, (want, kinds)
    for e in page.data:
        assert e.id.startswith("event_"), e.id
        assert e.event in names, e.event
    ok = next(e for e in page.data if e.event == "authentication.mfa_succeeded")
    assert ok.data.type == "mfa" and ok.data.status == "succeeded" and isinstance(ok.data.email, str), ok.data
    bad = next(e for e in page.data if e.event == "authentication.mfa_failed")
    assert bad.data.error.code, bad.data


# ------------------------------------------------------------------ hosted sign-in (AuthKit)
# The Rust test allows http://127.0.0.1:*/callback (the loopback port wildcard). A browser is
# played by urllib: it keeps the CSRF and browser-session cookies and fills the forms.

import html as html_lib  # noqa: E402
import http.cookiejar  # noqa: E402
import urllib.parse  # noqa: E402

CALLBACK = "http://127.0.0.1:9/callback"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HostedBrowser:
    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def open(self, url: str, form: Optional[dict] = None) -> Tuple[int, Any, str]:
        """(status, headers (case-insensitive), body); redirects are not followed."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(url, data=data, timeout=15) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()


def hidden(page: str, name: str) -> str:
    m = re.search(r'name="%s"[^>]*value="([^"]*)"' % re.escape(name), page)
    assert m, (name, page)
    return html_lib.unescape(m.group(1))


def hosted_sign_in(browser: HostedBrowser, url: str, user: User) -> str:
    """Signs in on the hosted pages; returns the URL back at the application."""
    status, _h, page = browser.open(url)
    assert status == 200, (status, page)
    form = {"csrf": hidden(page, "csrf"), "authz": hidden(page, "authz"),
            "email": user.email, "password": signin_password}
    status, _h, page = browser.open(BASE_URL.rstrip("/") + "/user_management/authorize/password", form)
    assert status == 200, (status, page)
    m = re.search(r'http-equiv="refresh" content="0;url=([^"]*)"', page)
    assert m, page
    return html_lib.unescape(m.group(1))


def callback_query(url: str) -> dict:
    assert url.startswith(CALLBACK + "?"), url
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


@check("get_authorization_url + hosted sign-in + authenticate_with_code returns user and tokens; state comes back unchanged")
def _() -> None:
    user = signin_user("code")
    state_value = "st~*" + secrets.token_urlsafe(30) + " &=+/"
    url = workos_client.user_management.get_authorization_url(
        provider="authkit", redirect_uri=CALLBACK, state=state_value, screen_hint="sign-in",
        login_hint=user.email,
    )
    assert url.startswith(BASE_URL.rstrip("/") + "/user_management/authorize?"), url
    back = callback_query(hosted_sign_in(HostedBrowser(), url, user))
    assert back["state"] == state_value, back
    res = workos_client.user_management.authenticate_with_code(code=back["code"])
    assert_tokens(res, user)
    assert res.authentication_method == "Password", res.authentication_method
    _header, claims = verify_access_token(res.access_token)
    assert claims["sub"] == user.id and claims["sid"].startswith("session_"), claims
    again = expect_raises(BadRequestException, lambda: workos_client.user_management.authenticate_with_code(code=back["code"]))
    assert again.response.status_code == 400, again
    signin["code_user"], signin["code"] = user, res


@check("authenticate_with_code with code_verifier (PKCE S256) works; a wrong verifier raises BadRequestException")
def _() -> None:
    user = signin_user("pkce")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    browser = HostedBrowser()
    url = workos_client.user_management.get_authorization_url(
        provider="authkit", redirect_uri=CALLBACK, state="p", code_challenge=challenge
    )
    assert "code_challenge_method=S256" in url, url
    back = callback_query(hosted_sign_in(browser, url, user))
    wrong = expect_raises(BadRequestException, lambda: workos_client.user_management.authenticate_with_code(
        code=back["code"], code_verifier=secrets.token_urlsafe(48)))
    assert wrong.response.status_code == 400, wrong
    # The same browser is signed in at Tessera: the next authorization returns at once.
    url = workos_client.user_management.get_authorization_url(
        provider="authkit", redirect_uri=CALLBACK, state="p2", code_challenge=challenge
    )
    status, headers, _page = browser.open(url)
    assert status == 302, status
    back = callback_query(headers["Location"])
    assert back["state"] == "p2", back
    res = workos_client.user_management.authenticate_with_code(code=back["code"], code_verifier=verifier)
    assert_tokens(res, user)


@check("authenticate_with_code(session={seal_session}) + load_sealed_session().authenticate() work on the code's tokens")
def _() -> None:
    user = signin_user("codeseal")
    url = workos_client.user_management.get_authorization_url(provider="authkit", redirect_uri=CALLBACK, state="s")
    back = callback_query(hosted_sign_in(HostedBrowser(), url, user))
    res = workos_client.user_management.authenticate_with_code(
        code=back["code"], session={"seal_session": True, "cookie_password": COOKIE_PASSWORD}
    )
    assert isinstance(res.sealed_session, str) and res.sealed_session, res
    result = workos_client.user_management.load_sealed_session(
        sealed_session=res.sealed_session, cookie_password=COOKIE_PASSWORD
    ).authenticate()
    if isinstance(result, AuthenticateWithSessionCookieSuccessResponse):
        assert result.user.id == user.id, result
    else:  # only a token that crossed a time boundary may fail, and then as invalid_jwt
        assert getattr(result.reason, "value", result.reason) == "invalid_jwt", result


@check("list_sessions lists the user's sessions newest first with status, auth_method, expires_at")
def _() -> None:
    user = need(signin.get("code_user"), "code sign-in")
    res = need(signin.get("code"), "code sign-in")
    sid = jwt_part(res.access_token.split(".")[1])["sid"]
    page = workos_client.user_management.list_sessions(user_id=user.id)
    assert len(page.data) >= 1, page
    s = page.data[0]
    assert s.id == sid and s.user_id == user.id, (s, sid)
    assert s.object == "session" and s.status == "active" and s.auth_method == "password", s
    assert TIMESTAMP.match(s.expires_at) and s.ended_at is None, s


@check("revoke_session returns None; the session lists as revoked and its refresh token fails")
def _() -> None:
    user = need(signin.get("code_user"), "code sign-in")
    res = need(signin.get("code"), "code sign-in")
    sid = jwt_part(res.access_token.split(".")[1])["sid"]
    assert workos_client.user_management.revoke_session(session_id=sid) is None
    s = next(x for x in workos_client.user_management.list_sessions(user_id=user.id).data if x.id == sid)
    assert s.status == "revoked" and TIMESTAMP.match(s.ended_at or ""), s
    err = expect_raises(BadRequestException, lambda: workos_client.user_management.authenticate_with_refresh_token(
        refresh_token=res.refresh_token))
    assert err.response.status_code == 400, err


@check("get_logout_url ends the session and returns only to an allowed return_to")
def _() -> None:
    user = signin_user("logout")
    browser = HostedBrowser()
    url = workos_client.user_management.get_authorization_url(provider="authkit", redirect_uri=CALLBACK, state="l")
    back = callback_query(hosted_sign_in(browser, url, user))
    res = workos_client.user_management.authenticate_with_code(code=back["code"])
    sid = jwt_part(res.access_token.split(".")[1])["sid"]
    logout = workos_client.user_management.get_logout_url(session_id=sid, return_to=CALLBACK)
    status, headers, _page = browser.open(logout)
    assert status == 302 and headers["Location"] == CALLBACK, (status, headers)
    statuses = {x.id: x.status for x in workos_client.user_management.list_sessions(user_id=user.id).data}
    assert statuses[sid] == "revoked", statuses
    status, headers, page = browser.open(
        workos_client.user_management.get_logout_url(session_id=sid, return_to="https://elsewhere.example/"))
    assert status == 200 and "Location" not in headers and "You are signed out" in page, (status, headers)


@check("get_user_by_external_id returns the user; an unknown one raises NotFoundException")
def _() -> None:
    ext = f"crm-{suffix}"
    user = workos_client.user_management.create_user(email=f"sdk-py5-ext-{suffix}@example.com", external_id=ext)
    found = workos_client.user_management.get_user_by_external_id(ext)
    assert found.id == user.id and found.external_id == ext, found
    expect_raises(NotFoundException, lambda: workos_client.user_management.get_user_by_external_id(f"none-{suffix}"))


print(f"sdk-python-v5: {passed} passed, {failed} failed", flush=True)
sys.exit(0 if failed == 0 else 1)
