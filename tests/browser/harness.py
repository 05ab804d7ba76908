"""The one browser-test harness for Tessera's pages (dashboard and hosted sign-in).

* `Server` starts the real `tessera` binary on a fresh SQLite database (port 0) and can run
  its CLI against the same database.
* `Browser` drives one headless Debian Chromium (`/usr/bin/chromium` through
  `/usr/bin/chromedriver`), shared by every test of every suite. Elements are found by their
  label and role (label text, button text, heading), never by CSS classes. Waits are bounded
  waits for a condition, never fixed sleeps.
* `run.py` discovers the suites (`test_*.py` here), runs each `test_*` function, saves
  screenshots, and prints `N passed, M failed`.

Selenium is installed (pinned) into `.sdk/browser` by `scripts/install-browser.sh`.
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WAIT_SECONDS = 10


def xpath_literal(s):
    """`s` as an XPath string literal (handles both quote kinds)."""
    if "'" not in s:
        return "'%s'" % s
    if '"' not in s:
        return '"%s"' % s
    return "concat('%s')" % s.replace("'", "', \"'\", '")


class Server:
    """A `tessera serve` process on a fresh database, stopped by `close()`."""

    def __init__(self, env=None):
        self.binary = os.environ.get("TESSERA_BIN") or os.path.join(ROOT, "target", "debug", "tessera")
        self.dir = tempfile.mkdtemp(prefix="tessera-browser-")
        self.db = os.path.join(self.dir, "tessera.db")
        self.env = dict(os.environ)
        self.env.update({"TESSERA_DATABASE_URL": self.db, "TESSERA_LOG": "info"})
        # No inherited settings that would change what the tests see.
        for k in ("TESSERA_MASTER_KEY", "TESSERA_PUBLIC_URL", "TESSERA_LISTEN"):
            self.env.pop(k, None)
        self.env.update(env or {})
        self.log = []
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "127.0.0.1:0"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.api_key = None
        self.base = None
        self.client_id = None
        ready = threading.Event()

        def read_log():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"store it now: (sk_\S+)", line)
                if m:
                    self.api_key = m.group(1)
                m = re.search(r"tessera is listening address=(\S+) client_id=(\S+)", line)
                if m:
                    self.base = "http://" + m.group(1)
                    self.client_id = m.group(2)
                    ready.set()
            ready.set()

        threading.Thread(target=read_log, daemon=True).start()
        if not ready.wait(30) or self.base is None:
            self.close()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))

    def cli(self, *args, stdin=None):
        """Runs `tessera ARGS` on this server's database; returns stdout (fails on error)."""
        out = subprocess.run(
            [self.binary, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise AssertionError("tessera %s failed: %s" % (" ".join(args), out.stderr))
        return out.stdout

    def api(self, method, path, body=None, key=None):
        """Calls the JSON API; returns (status, parsed body or None)."""
        import json

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if key is not False:
            req.add_header("Authorization", "Bearer " + (key or self.api_key))
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text

    def panicked(self):
        return any("panicked" in line for line in self.log)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def totp(secret_b32, at=None, step_offset=0):
    """RFC 6238 code (SHA-1, 6 digits, 30 s) for a base32 secret (spaces ignored)."""
    s = secret_b32.replace(" ", "").upper()
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    step = int((at if at is not None else time.time()) // 30) + step_offset
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    n = struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF
    return "%06d" % (n % 1000000)


class Browser:
    """One headless Chromium for the whole run."""

    def __init__(self, screenshot_dir):
        self.screenshot_dir = screenshot_dir
        os.makedirs(screenshot_dir, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,900", "--force-device-scale-factor=1", "--hide-scrollbars"):
            opts.add_argument(a)
        service = Service(executable_path=os.environ.get("TESSERA_CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_page_load_timeout(30)
        # A page replaced mid-check leaves stale elements: check again rather than fail.
        self.wait = WebDriverWait(self.driver, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])

    def fresh(self):
        """Forgets cookies (a new visitor) and restores the desktop size."""
        self.driver.delete_all_cookies()
        self.driver.set_window_size(1280, 900)

    def open(self, url):
        self.driver.get(url)

    @property
    def url(self):
        return self.driver.current_url

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def heading(self):
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def wait_heading(self, text):
        """Waits until the page's one <h1> reads `text`."""
        try:
            self.wait.until(lambda d: any(h.text == text for h in d.find_elements(By.TAG_NAME, "h1")))
        except TimeoutException:
            raise AssertionError("expected heading %r, page %s shows:\n%s" % (text, self.url, self.text()))

    def field(self, label):
        """The control whose <label> reads `label`."""
        lab = self.driver.find_element(By.XPATH, "//label[normalize-space()=%s]" % xpath_literal(label))
        return self.driver.find_element(By.ID, lab.get_attribute("for"))

    def fill(self, label, value):
        f = self.field(label)
        f.clear()
        f.send_keys(value)

    def button(self, text):
        return self.driver.find_element(By.XPATH, "//button[normalize-space()=%s]" % xpath_literal(text))

    def press(self, text):
        """Clicks a button that submits a form, and waits until the next page has replaced
        this one (so the following checks never read the old page)."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        self.button(text).click()

        def replaced(_):
            try:
                old.tag_name
                return False
            except WebDriverException:
                # Stale, or (Chromium) "node does not belong to the document": replaced.
                return True

        self.wait.until(replaced)

    def link(self, text):
        return self.driver.find_element(By.XPATH, "//a[normalize-space()=%s]" % xpath_literal(text))

    def by_label_text(self, aria_label):
        return self.driver.find_element(By.XPATH, "//*[@aria-label=%s]" % xpath_literal(aria_label))

    def screenshot(self, name, width=None, dark=False):
        """Saves the whole page as `<name>.png` (at `width` CSS pixels when given; with
        `prefers-color-scheme: dark` when `dark`)."""
        d = self.driver
        if dark:
            d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        w = width or 1280
        d.set_window_size(w, 900)
        height = d.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        # The window's height includes what the browser draws around the page.
        d.set_window_size(w, min(max(int(height) + 140, 600), 4000))
        path = os.path.join(self.screenshot_dir, name + ".png")
        d.save_screenshot(path)
        d.set_window_size(1280, 900)
        if dark:
            d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        return path

    def close(self):
        self.driver.quit()
