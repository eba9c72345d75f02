"""The real app in a real browser: `python -m sodviz serve` on a free loopback port, every page in
headless Chromium, no exception box, a figure on each page, a screenshot of each (in
artifacts/browser/)."""

from __future__ import annotations

import time

import pytest
from browser import (
    IMAGE,
    PLOT,
    ROOT,
    SCREENSHOTS,
    chromium,
    click_button,
    needs_chromium,
    open_page,
    settle,
    streamlit_server,
    text_of,
    toggle,
    upload,
)
from browser import wait_for_page as _wait

from conftest import shared_images

pytestmark = needs_chromium()


@pytest.fixture(scope="module")
def server():
    log = SCREENSHOTS.parent / "streamlit.log"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(log) as url:
        yield url
    text = log.read_text()
    assert "Traceback" not in text and "torch.classes" not in text and "__path__._path" not in text, text


DOWNLOADS = ROOT / "artifacts" / "downloads"


@pytest.fixture(scope="module")
def browser():
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    for old in DOWNLOADS.glob("*"):
        old.unlink()
    with chromium(downloads=DOWNLOADS) as driver:
        yield driver


def _wait_for_page(driver, figure_selector: str, timeout: float = 120) -> None:
    _wait(driver, figure_selector, timeout)
    settle(driver)


def test_every_page_in_chromium(server, browser):
    browser.get(server)
    _wait_for_page(browser, IMAGE)
    browser.save_screenshot(str(SCREENSHOTS / "home.png"))
    pages = ("Detections", "Attention", "ViCrop", "ERF", "Fusion maps", "Candidates")
    for title in pages:
        open_page(browser, title)
        time.sleep(1)
        _wait_for_page(browser, PLOT)
        browser.save_screenshot(str(SCREENSHOTS / f"{title.lower().replace(' ', '_')}.png"))
    toggle(browser, "Add the boxes of ViCrop-Det's crops")  # on the Candidates page
    time.sleep(1)
    _wait_for_page(browser, PLOT)
    browser.save_screenshot(str(SCREENSHOTS / "candidates_crops.png"))
    open_page(browser, "Explain")  # the demo detector's best detection: maps, curves, numbers
    time.sleep(1)
    _wait_for_page(browser, PLOT)
    main = text_of(browser, '[data-testid="stMain"]')
    assert "Maps of q" in main and "Numbers per method" in main, main[:500]
    browser.save_screenshot(str(SCREENSHOTS / "explain.png"))


@pytest.mark.skipif(not shared_images(), reason="no real photograph in ../shared/data")
def test_a_real_photograph_as_an_upload(server, browser):

    photo = shared_images()[0]
    browser.get(server)
    _wait_for_page(browser, IMAGE)
    upload(browser, photo)
    _wait_for_page(browser, IMAGE)
    assert photo.name in text_of(browser, '[data-testid="stMain"]')
    for title in ("Detections", "Attention"):
        open_page(browser, title)
        time.sleep(1)
        _wait_for_page(browser, PLOT)
        assert photo.name in text_of(browser, '[data-testid="stSidebar"]')
        browser.save_screenshot(str(SCREENSHOTS / f"upload_{title.lower()}.png"))


def test_the_report_downloaded_from_the_sidebar_opens_offline(server, browser):
    """Visit Detections and ViCrop, download the report from the sidebar, then open the file with
    the network cut: its plotly figures draw and its images load."""
    from selenium.webdriver.common.by import By

    browser.get(server)
    _wait_for_page(browser, IMAGE)
    for title in ("Detections", "ViCrop"):
        open_page(browser, title)
        time.sleep(1)
        _wait_for_page(browser, PLOT)
    click_button(browser, "Download report", within='[data-testid="stSidebar"]')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(DOWNLOADS.glob("*.sodviz.html")):
        time.sleep(0.5)
    (report,) = DOWNLOADS.glob("*.sodviz.html")
    text = report.read_text()
    assert (
        "<h2>Detections</h2>" in text and "<h2>ViCrop-Det</h2>" in text and "<h2>Attention</h2>" not in text
    )
    browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    try:
        browser.get(report.as_uri())
        time.sleep(3)
        assert len(browser.find_elements(By.CSS_SELECTOR, ".main-svg")) >= 2  # plotly drew the figures
        images = browser.find_elements(By.TAG_NAME, "img")
        assert images and all(
            browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images
        )
        browser.save_screenshot(str(SCREENSHOTS / "report.png"))
    finally:
        browser.delete_network_conditions()
