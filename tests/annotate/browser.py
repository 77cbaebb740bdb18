"""Debian's headless chromium driven by selenium, with nothing downloaded and nothing shared between runs.

Without the browser the tests that need it skip, saying how to install it, unless
``FRUGALSEG_REQUIRE_BROWSER=1`` (set by ``make test``, so CI) makes its absence a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900"]


def _unavailable(why: str) -> None:
    if os.environ.get("FRUGALSEG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}, and FRUGALSEG_REQUIRE_BROWSER=1 requires the browser test "
                    "(apt-get install chromium chromium-driver; pip install selenium)")
    pytest.skip(f"{why}: apt-get install chromium chromium-driver (make test does, as root)")


def chromium(profile: Path) -> Any:  # noqa: ANN401
    """A fresh headless chromium with its own profile folder ``profile``."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            _unavailable(f"{path} is missing")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
