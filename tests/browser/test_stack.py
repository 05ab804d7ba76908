"""The harness itself: the real binary starts on a fresh database, its CLI runs against the
same database, and the shared Chromium reaches it. Page suites build on this."""

from harness import Server


def test_the_harness_starts_the_real_server_and_the_browser_reaches_it(browser):
    server = Server()
    try:
        assert server.api_key and server.api_key.startswith("sk_"), "the bootstrap key was read"
        assert server.cli("client-id").strip() == server.client_id
        browser.open(server.base + "/health")
        assert '"status"' in browser.text() or "ok" in browser.text().lower(), browser.text()
        status, _ = server.api("GET", "/user_management/users")
        assert status == 200
        assert not server.panicked()
    finally:
        server.close()
