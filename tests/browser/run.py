"""Runs every browser suite (`test_*.py` beside this file) with one shared Chromium.

Each suite module has functions `test_*(browser)`; a test starts its own servers (fresh
databases) through `harness.Server`. Screenshots go to `$TESSERA_SCREENSHOT_DIR` (default
`target/browser-screenshots`). Prints `browser: N passed, M failed` last; exits non-zero when
any test failed. Usage: `python3 tests/browser/run.py [name-filter]`.
"""

import importlib
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else ""
    here = os.path.dirname(os.path.abspath(__file__))
    shots = os.environ.get("TESSERA_SCREENSHOT_DIR") or os.path.join(harness.ROOT, "target", "browser-screenshots")
    browser = harness.Browser(shots)
    passed, failed = 0, 0
    try:
        for name in sorted(f[:-3] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py")):
            module = importlib.import_module(name)
            for fn_name in sorted(n for n in dir(module) if n.startswith("test_")):
                full = "%s.%s" % (name, fn_name)
                if flt not in full:
                    continue
                browser.fresh()
                try:
                    getattr(module, fn_name)(browser)
                    passed += 1
                    print("ok   " + full, flush=True)
                except Exception:
                    failed += 1
                    print("FAIL " + full, flush=True)
                    traceback.print_exc()
                    try:
                        browser.screenshot("FAILED-" + full)
                    except Exception:
                        pass
    finally:
        browser.close()
    print("browser: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
