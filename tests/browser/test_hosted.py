"""Hosted sign-in (AuthKit-compatible) in Chromium: an application built with the official
Python SDK (pinned, `.sdk/python-v5`) sends the browser to `get_authorization_url`, and a tiny
local HTTP server stands in for its callback, exchanging the code with
`authenticate_with_code`. Covers the TOTP sign-in, enrolment when MFA is required, the
immediate redirect of a signed-in browser, and logout."""

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from harness import ROOT, Server, totp

sys.path.insert(0, os.path.join(ROOT, ".sdk", "python-v5"))


class App:
    """The application: `/callback` exchanges the code with the SDK and greets the user;
    `/bye` is where logout returns."""

    def __init__(self, server):
        from workos import WorkOSClient

        self.um = WorkOSClient(
            api_key=server.api_key, client_id=server.client_id, base_url=server.base
        ).user_management
        self.signed_in = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                u = urlparse(self.path)
                q = parse_qs(u.query)
                if u.path == "/callback":
                    auth = app.um.authenticate_with_code(code=q["code"][0])
                    app.signed_in.append(
                        {"state": q.get("state", [None])[0], "auth": auth}
                    )
                    body = "<h1>Welcome %s</h1>" % auth.user.email
                else:
                    body = "<h1>Goodbye</h1>"
                data = ("<!doctype html><title>App</title>" + body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.httpd.server_address[1]
        self.callback = "http://127.0.0.1:%d/callback" % port
        self.bye = "http://127.0.0.1:%d/bye" % port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        # The loopback port wildcard, spelled out in the allow-list entry.
        server.cli("redirect-uris", "add", "http://127.0.0.1:*/callback")
        server.cli("redirect-uris", "add", "http://127.0.0.1:*/bye")

    def authorize_url(self, state, **extra):
        return self.um.get_authorization_url(
            provider="authkit", redirect_uri=self.callback, state=state, **extra
        )

    def close(self):
        self.httpd.shutdown()


def session_id(access_token):
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def user_with_password(server, email):
    status, user = server.api(
        "POST", "/user_management/users", {"email": email, "password": "correct horse battery"}
    )
    assert status == 201, user
    return user


def sign_in(browser, email):
    browser.wait_heading("Sign in")
    browser.fill("Email", email)
    browser.fill("Password", "correct horse battery")
    browser.press("Continue")


def test_a_totp_user_signs_in_then_gets_codes_at_once_then_logs_out(browser):
    server = Server()
    app = App(server)
    try:
        user = user_with_password(server, "grace@example.com")
        status, enrolled = server.api(
            "POST", "/user_management/users/%s/auth_factors" % user["id"], {"type": "totp"}
        )
        assert status == 201, enrolled
        secret = enrolled["authentication_factor"]["totp"]["secret"]
        state = "Fe26.2**" + "~*" * 10 + "sealed"
        browser.open(app.authorize_url(state))
        browser.wait_heading("Sign in")
        browser.screenshot("hosted-sign-in")
        browser.screenshot("hosted-sign-in-phone", width=375)
        sign_in(browser, "grace@example.com")
        browser.wait_heading("Enter your code")
        browser.fill("Code", "000000")
        browser.press("Continue")
        browser.wait_heading("Enter your code")
        assert "That code didn't work" in browser.text(), browser.text()
        browser.screenshot("hosted-code")
        browser.screenshot("hosted-code-phone", width=375)
        browser.fill("Code", totp(secret))
        browser.press("Continue")
        browser.wait_heading("Welcome grace@example.com")
        first = app.signed_in[-1]
        assert first["state"] == state, first["state"]
        assert first["auth"].authentication_method == "Password"

        # Signed in at Tessera: the next authorization comes straight back with a new code.
        browser.open(app.authorize_url("second"))
        browser.wait_heading("Welcome grace@example.com")
        assert app.signed_in[-1]["state"] == "second"
        assert len(app.signed_in) == 2

        # Logout ends the session and Tessera's browser session, then returns to the app.
        sid = session_id(first["auth"].access_token)
        browser.open(app.um.get_logout_url(session_id=sid, return_to=app.bye))
        browser.wait_heading("Goodbye")
        status, sessions = server.api("GET", "/user_management/users/%s/sessions" % user["id"])
        statuses = {s["id"]: s["status"] for s in sessions["data"]}
        assert statuses[sid] == "revoked", statuses
        browser.open(app.authorize_url("third"))
        browser.wait_heading("Sign in")

        # A return_to that is not allowed: Tessera's own page instead.
        browser.open(app.um.get_logout_url(session_id=sid, return_to="https://elsewhere.example/"))
        browser.wait_heading("You are signed out")
        browser.screenshot("hosted-signed-out")
        assert not server.panicked()
    finally:
        app.close()
        server.close()


def test_required_mfa_enrols_the_user_on_the_hosted_pages(browser):
    server = Server()
    app = App(server)
    try:
        server.cli("settings", "mfa-required", "on")
        user = user_with_password(server, "ada@example.com")
        browser.open(app.authorize_url("enrol"))
        sign_in(browser, "ada@example.com")
        browser.wait_heading("Set up two-step verification")
        status, factors = server.api("GET", "/user_management/users/%s/auth_factors" % user["id"])
        assert factors["data"] == [], "no factor before a right code"
        browser.driver.find_element("xpath", "//summary[normalize-space()=\"Can't scan it?\"]").click()
        secret = browser.by_label_text("Secret key").text
        assert len(secret.replace(" ", "")) == 32, secret
        browser.screenshot("hosted-enrol")
        browser.screenshot("hosted-enrol-phone", width=375)
        browser.fill("Code", totp(secret))
        browser.press("Verify and continue")
        browser.wait_heading("Welcome ada@example.com")
        assert app.signed_in[-1]["state"] == "enrol"
        status, factors = server.api("GET", "/user_management/users/%s/auth_factors" % user["id"])
        assert [f["type"] for f in factors["data"]] == ["totp"]
        assert not server.panicked()
    finally:
        app.close()
        server.close()


def test_sign_up_when_it_is_on(browser):
    server = Server()
    app = App(server)
    try:
        server.cli("settings", "sign-up", "on")
        browser.open(app.authorize_url("new", screen_hint="sign-up"))
        browser.wait_heading("Create an account")
        browser.screenshot("hosted-sign-up")
        browser.fill("Email", "new@example.com")
        browser.fill("Password", "correct horse battery")
        browser.press("Create account")
        browser.wait_heading("Welcome new@example.com")
    finally:
        app.close()
        server.close()
