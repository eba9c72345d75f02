"""The real app in a real browser: `streamlit run` on a free loopback port, every page in headless
Chromium, no exception box, a figure on each page, a screenshot of each (in artifacts/browser/)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import shared_images

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "browser"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER) and os.environ.get("CI"):
    raise RuntimeError("CI needs Debian's chromium and chromium-driver (make test installs them)")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium / chromedriver not installed (make test installs them)"
)
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1100",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log = open(SCREENSHOTS.parent / "streamlit.log", "w")  # noqa: SIM115 - closed after the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
        ],
        cwd=ROOT,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not answer within 60 s")
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()
    text = (SCREENSHOTS.parent / "streamlit.log").read_text()
    assert "Traceback" not in text and "torch.classes" not in text and "__path__._path" not in text, text


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _wait_for_page(driver, figure_selector: str, timeout: float = 120) -> None:
    """Until the script has finished running and a figure is on the page; fail on an exception box."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        assert not exceptions, exceptions[0].text
        idle = driver.find_elements(
            By.CSS_SELECTOR, '[data-testid="stApp"][data-test-script-state="notRunning"]'
        )
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        if idle and not running and driver.find_elements(By.CSS_SELECTOR, figure_selector):
            time.sleep(0.5)  # let the last deltas paint
            exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
            assert not exceptions, exceptions[0].text
            return
        time.sleep(0.25)
    pytest.fail(f"page did not finish with a {figure_selector} within {timeout} s")


def _open(driver, title: str) -> None:
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')
    next(link for link in links if link.text.strip().endswith(title)).click()


PLOT = '[data-testid="stPlotlyChart"] .main-svg'
IMAGE = '[data-testid="stImage"] img, [data-testid="stImageContainer"] img'


def test_every_page_in_chromium(server, browser):
    browser.get(server)
    _wait_for_page(browser, IMAGE)
    browser.save_screenshot(str(SCREENSHOTS / "home.png"))
    pages = ("Detections", "Attention", "ViCrop", "ERF", "Fusion maps", "Candidates")
    for title in pages:
        _open(browser, title)
        time.sleep(1)
        _wait_for_page(browser, PLOT)
        browser.save_screenshot(str(SCREENSHOTS / f"{title.lower().replace(' ', '_')}.png"))
    _toggle(browser, "Add the boxes of ViCrop-Det's crops")  # on the Candidates page
    time.sleep(1)
    _wait_for_page(browser, PLOT)
    browser.save_screenshot(str(SCREENSHOTS / "candidates_crops.png"))


def _toggle(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    toggles = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stCheckbox"] label')
    toggle = next(t for t in toggles if t.text.strip().startswith(label))
    toggle.click()
    time.sleep(0.5)
    assert toggle.find_element(By.CSS_SELECTOR, "input").is_selected()


@pytest.mark.skipif(not shared_images(), reason="no real photograph in ../shared/data")
def test_a_real_photograph_as_an_upload(server, browser):
    from selenium.webdriver.common.by import By

    photo = shared_images()[0]
    browser.get(server)
    _wait_for_page(browser, IMAGE)
    radios = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
    next(r for r in radios if r.text.strip().endswith("Upload")).click()
    time.sleep(1)
    _wait_for_page(browser, '[data-testid="stFileUploader"] input[type="file"]')
    inputs = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stFileUploader"] input[type="file"]')
    inputs[0].send_keys(str(photo))
    time.sleep(1)
    _wait_for_page(browser, IMAGE)
    assert photo.name in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    for title in ("Detections", "Attention"):
        _open(browser, title)
        time.sleep(1)
        _wait_for_page(browser, PLOT)
        assert photo.name in browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"]').text
        browser.save_screenshot(str(SCREENSHOTS / f"upload_{title.lower()}.png"))
