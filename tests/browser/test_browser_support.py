"""The browser tests' prerequisites and helpers, without a browser where none is needed."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import browser as support

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


@pytest.mark.parametrize("missing", ["CHROMIUM", "CHROMEDRIVER"])
def test_without_chromium_the_tests_skip_locally_and_fail_under_ci(
    missing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(support, missing, tmp_path / "absent")

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        support.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="and CI is set"):
        support.require_chromium()


def test_screenshots_are_taken_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(support.SCREENSHOTS_ENV, raising=False)
    # Not even touched without the variable: no browser is needed for a no-op.
    assert support.screenshot(None, "anything") is None  # type: ignore[arg-type]


def test_a_screenshot_holds_the_whole_page(
    browser: WebDriver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(support.SCREENSHOTS_ENV, str(tmp_path / "shots"))
    browser.get("data:text/html,<body style='margin:0'><div style='height:2500px'>tall</div>")

    path = support.screenshot(browser, "tall-page")

    assert path == tmp_path / "shots" / "tall-page.png"
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width >= support.WIDTH * 0.9 and height >= 2500
    assert browser.get_window_size() == {"width": support.WIDTH, "height": support.HEIGHT}
