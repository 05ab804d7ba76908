"""The admin dashboard in Chromium, against the real binary: first sign-in with TOTP
enrolment (the code computed from the secret shown on the page), a second sign-in with a
code, requiring MFA and checking it through the API, resetting a user's MFA, creating and
revoking an API key. Screenshots of every page go to the screenshot directory."""

import time

from selenium.webdriver.common.by import By

from harness import Server, totp

PASSWORD = "correct horse battery staple"


def sign_in(browser, server, email):
    browser.open(server.base + "/dashboard")
    browser.wait_heading("Sign in to the dashboard")
    browser.fill("Email", email)
    browser.fill("Password", PASSWORD)
    browser.press("Sign in")


def enter_code(browser, code):
    browser.fill("Code", code)
    browser.press("Verify")


def test_an_admin_runs_the_dashboard_in_the_browser(browser):
    # The API key cache is off so a revoked key is refused on the very next call.
    server = Server(env={"TESSERA_API_KEY_CACHE_MS": "0", "TESSERA_ENVIRONMENT_NAME": "Acme"})
    try:
        admin_id = server.cli("admins", "add", "ada@example.com", stdin=PASSWORD + "\n").strip()
        assert admin_id.startswith("admin_"), admin_id

        # Signed out: the dashboard sends the browser to the login page.
        browser.open(server.base + "/dashboard/users")
        browser.wait_heading("Sign in to the dashboard")
        browser.screenshot("login")
        browser.screenshot("login-phone", width=375)

        # A wrong password: a message that does not say whether the admin exists.
        browser.fill("Email", "ada@example.com")
        browser.fill("Password", "wrong password!!")
        browser.press("Sign in")
        browser.wait_heading("Sign in to the dashboard")
        assert "did not match" in browser.text()

        # First sign-in: enrolment with the QR code and the secret as text.
        sign_in(browser, server, "ada@example.com")
        browser.wait_heading("Set up two-factor authentication")
        browser.driver.find_element(By.TAG_NAME, "summary").click()
        secret = browser.by_label_text("Secret key").text
        assert len(secret.replace(" ", "")) == 32, secret
        qr = browser.driver.find_element(By.CSS_SELECTOR, "img.qr")
        assert qr.get_attribute("src").startswith("data:image/png;base64,")
        assert qr.size["width"] >= 180
        browser.screenshot("enroll")
        browser.screenshot("enroll-phone", width=375)
        browser.screenshot("enroll-dark", dark=True)
        enter_code(browser, "000000" if totp(secret) != "000000" else "111111")
        browser.wait_heading("Set up two-factor authentication")
        assert "didn't work" in browser.text()
        step = int(time.time() // 30)
        enter_code(browser, totp(secret, at=step * 30))
        browser.wait_heading("Users")

        # Sign out, and sign in again with a code (the secret is not shown again). The code
        # of the enrolment step is spent (replay guard): the next step's code is used.
        browser.press("Sign out")
        browser.wait_heading("Sign in to the dashboard")
        sign_in(browser, server, "ada@example.com")
        browser.wait_heading("Enter your code")
        assert secret not in browser.text() and "Can't scan" not in browser.text()
        browser.screenshot("code")
        enter_code(browser, totp(secret, at=step * 30))  # the same step again: a replay
        browser.wait_heading("Enter your code")
        assert "didn't work" in browser.text()
        enter_code(browser, totp(secret, at=(step + 1) * 30))
        browser.wait_heading("Users")

        # A user with a factor, and one without.
        status, grace = server.api("POST", "/user_management/users", {"email": "grace@example.com", "password": "correct horse battery", "first_name": "Grace", "last_name": "Hopper"})
        assert status == 201, grace
        status, _ = server.api("POST", "/user_management/users/%s/auth_factors" % grace["id"], {"type": "totp"})
        assert status == 201
        status, alan = server.api("POST", "/user_management/users", {"email": "alan@example.com", "password": "correct horse battery"})
        assert status == 201

        # Authentication: require MFA, then a password sign-in without a factor gets 403.
        browser.link("Authentication").click()
        browser.wait_heading("Authentication")
        box = browser.field("Require multi-factor authentication")
        assert not box.is_selected()
        box.click()
        browser.press("Save")
        browser.wait_heading("Authentication")
        assert browser.field("Require multi-factor authentication").is_selected()
        assert "Saved" in browser.text()
        browser.screenshot("authentication")
        status, body = server.api("POST", "/user_management/authenticate", {
            "grant_type": "password", "client_id": server.client_id, "client_secret": server.api_key,
            "email": "alan@example.com", "password": "correct horse battery"}, key=False)
        assert status == 403 and body["code"] == "mfa_enrollment", (status, body)
        assert "mfa-required" not in server.cli("admins", "list")

        # Users: search, open, reset MFA after a confirmation.
        browser.link("Users").click()
        browser.wait_heading("Users")
        browser.fill("Search by email", "gra")
        browser.press("Search")
        browser.wait_heading("Users")
        assert "grace@example.com" in browser.text() and "alan@example.com" not in browser.text()
        browser.screenshot("users")
        browser.screenshot("users-phone", width=375)
        browser.link("grace@example.com").click()
        browser.wait_heading("grace@example.com")
        assert "Authenticator app (TOTP)" in browser.text()
        browser.screenshot("user")
        browser.screenshot("user-dark", dark=True)
        browser.press("Reset MFA")
        browser.wait_heading("Reset MFA")
        assert "Delete 1 factor of grace@example.com?" in browser.text()
        browser.screenshot("reset-mfa-confirm")
        browser.press("Reset MFA")
        browser.wait_heading("grace@example.com")
        assert "Deleted 1 factor" in browser.text()
        status, factors = server.api("GET", "/user_management/users/%s/auth_factors" % grace["id"])
        assert status == 200 and factors["data"] == [], factors

        # API keys: create (shown once), use it, revoke it after a confirmation: 401.
        browser.link("API keys").click()
        browser.wait_heading("API keys")
        browser.fill("Name", "backend")
        browser.press("Create API key")
        browser.wait_heading("API keys")
        new_key = browser.by_label_text("New API key").text
        assert new_key.startswith("sk_"), new_key
        browser.screenshot("api-keys")
        status, _ = server.api("GET", "/user_management/users", key=new_key)
        assert status == 200
        browser.press("Revoke backend")
        browser.wait_heading("Revoke API key")
        browser.press("Revoke key")
        browser.wait_heading("API keys")
        assert new_key not in browser.text()
        status, _ = server.api("GET", "/user_management/users", key=new_key)
        assert status == 401

        # Events: admin actions are there, filterable by type.
        browser.link("Events").click()
        browser.wait_heading("Events")
        assert "admin.api_key_revoked" in browser.text()
        browser.screenshot("events")
        from selenium.webdriver.support.ui import Select
        Select(browser.field("Type")).select_by_visible_text("admin.user_mfa_reset")
        browser.press("Filter")
        browser.wait_heading("Events")
        rows = browser.driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 1 and "admin.user_mfa_reset" in rows[0].text

        # Signing keys: rotate after a confirmation.
        browser.link("Signing keys").click()
        browser.wait_heading("Signing keys")
        before = browser.driver.find_element(By.ID, "current-kid").text
        browser.press("Rotate signing key")
        browser.wait_heading("Rotate signing key")
        browser.press("Rotate signing key")
        browser.wait_heading("Signing keys")
        after = browser.driver.find_element(By.ID, "current-kid").text
        assert after and after != before
        browser.screenshot("signing-keys")
        assert not server.panicked(), "".join(server.log)
    finally:
        server.close()
