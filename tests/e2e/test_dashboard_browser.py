"""The live dashboard in a real browser: Debian's headless Chromium driven by selenium through chromium-driver.

Images stream through a real Scorer (DuckDB) on the session broker; the page must show the
numbers, then show new ones when more predictions arrive, without a reload (server-sent events).
A screenshot goes to out/dashboard/dashboard.png. Nothing is downloaded: selenium gets the path of
/usr/bin/chromedriver, so Selenium Manager never runs. Skips, naming what to install, without
the browser. Takes about 15 s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamscore.producers.images import produce_images
from streamscore.shared.config import Settings
from streamscore.shared.kafka import flush, make_producer
from streamscore.shared.mnist import MnistSplit
from support.drill import split_slice
from support.live_stream import live_stream

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("STREAMSCORE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("STREAMSCORE_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOT = Path(__file__).resolve().parents[2] / "out" / "dashboard" / "dashboard.png"
INSTALL = "apt-get install -y chromium chromium-driver (Debian; .ci/run does it when root)"


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium; skips naming the packages when the browser, its driver or selenium is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.skip(f"no {' and no '.join(missing)}: {INSTALL}, or set STREAMSCORE_CHROMIUM/STREAMSCORE_CHROMEDRIVER")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is missing: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.service import Service

    # a guard: were Selenium Manager (which downloads drivers) ever asked, it would fail instead
    monkeypatch.setenv("SE_MANAGER_PATH", "/nonexistent/selenium-manager")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,2200", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def wait_for(driver: Any, condition: Callable[[], bool], what: Callable[[], str], timeout: float = 60) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda _driver: condition())
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what()}") from None


def test_page_shows_the_stream_and_follows_it(make_settings: Callable[..., Settings], test_split: MnistSplit,
                                              browser: Any) -> None:
    settings = make_settings(batch_size=100)
    with live_stream(settings) as stream:
        produce_images(settings, test_split, limit=300)
        producer = make_producer(settings)
        producer.produce(settings.images_topic, key=b"bad-short", value=bytes(10))
        flush(producer)
        browser.get(stream.dashboard.url)
        seen = lambda: f"page: {text(browser, 'main')[:600]!r}"  # noqa: E731 - the wait's message
        wait_for(browser, lambda: text(browser, "#predictions") == "300" and text(browser, "#dlq-total") == "1", seen)
        browser.execute_script("window.notReloaded = true;")
        first = stream.get_json("/api/summary")
        assert text(browser, "#images") == "300"
        assert text(browser, '#versions tr[data-version="2"] .accuracy') == f"{first['versions']['2']['accuracy']:.4f}"
        assert text(browser, '#dlq tr[data-reason="bad-length"]') == "bad-length 1"
        assert text(browser, "#latency-p50").endswith(" ms") and text(browser, "#latency-p99").endswith(" ms")
        assert text(browser, '#models tr[data-version="2"] .role') == "champion"
        assert browser.find_elements("css selector", '#confusion table[data-version="2"]')
        assert browser.find_elements("css selector", '#accuracy-chart polyline[data-version="2"]')
        wait_for(browser, lambda: bool(browser.execute_script(
            "const imgs = [...document.querySelectorAll('#misclassified img')];"
            "return imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth === 28);")),
            lambda: "the misclassified digits' images")

        produce_images(settings, split_slice(test_split, 300, 500), limit=200)
        wait_for(browser, lambda: text(browser, "#predictions") == "500", seen)
        assert browser.execute_script("return window.notReloaded === true;"), "the page reloaded"
        assert text(browser, "#connection") == "live"
        wait_for(browser, lambda: text(browser, '#versions tr[data-version="2"] .predictions') == "500", seen)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
    assert not stream.errors
    assert SCREENSHOT.stat().st_size > 10_000
