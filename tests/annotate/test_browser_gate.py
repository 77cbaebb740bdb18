"""Without the browser the browser test skips with the install command, unless CI requires it: then it fails."""

from __future__ import annotations

import pytest

from tests.annotate import browser


@pytest.fixture
def no_chromium(monkeypatch, tmp_path):
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")


def test_skips_with_the_install_command(no_chromium, monkeypatch, tmp_path):
    monkeypatch.delenv("FRUGALSEG_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        browser.chromium(tmp_path / "profile")


def test_fails_when_required(no_chromium, monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGALSEG_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="FRUGALSEG_REQUIRE_BROWSER=1 requires the browser test"):
        browser.chromium(tmp_path / "profile")
