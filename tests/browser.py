"""Driving the real app in headless Chromium: the server, the browser, waiting for a page.

Used by the end-to-end test (tests/test_browser.py) and the page-speed benchmark
(benchmarks/bench_browser.py). Needs Debian's `chromium` and `chromium-driver`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"


def needs_chromium():
    """The mark of a browser test: skipped without chromium and chromedriver, except under CI,
    where a missing browser is an error."""
    import pytest

    if not (CHROMIUM and DRIVER) and os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium and chromium-driver (make test installs them)")
    return pytest.mark.skipif(
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
SERVE = [sys.executable, "-m", "sodviz", "serve"]  # the app as `make run` starts it (loopback)
PLOT = '[data-testid="stPlotlyChart"] .main-svg'
IMAGE = '[data-testid="stImage"] img, [data-testid="stImageContainer"] img'


class PageError(AssertionError):
    """The page showed an exception box, or did not finish in time."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log_path: Path, *, env: dict | None = None, args: tuple[str, ...] = (), processes=None):
    """`python -m sodviz serve` on a free loopback port (with `args`); yields its URL; stopped on
    exit. `processes`: a list the server's `Popen` is appended to (its pid, for memory)."""
    port = _free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*SERVE, "--port", str(port), *args],
            cwd=ROOT,
            env=os.environ | {"HF_HUB_OFFLINE": "1"} | (env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if processes is not None:
            processes.append(process)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise PageError("streamlit did not answer within 60 s") from None
                    time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


@contextlib.contextmanager
def chromium(downloads: Path | None = None):
    """A headless Chromium driven by selenium, with a throwaway profile; files it downloads land
    in `downloads` when given."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        if downloads is not None:
            behavior = {"behavior": "allow", "downloadPath": str(downloads)}
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", behavior)
        try:
            yield driver
        finally:
            driver.quit()


def wait_for_page(driver, figure_selector: str, timeout: float = 120) -> None:
    """Until the script has finished running and a figure is on the page; raise on an exception box.

    The page itself waits (`_PAGE_READY`, a MutationObserver), and answers once: polling through
    the driver (three element look-ups every 50 ms) cost a headless Chromium and its driver about
    24 % of a core per session (benchmarks/bench_load.py drives four on the server's 2 cores)."""
    answer = _wait_in_page(driver, _PAGE_READY, timeout, figure_selector)
    if answer is None:
        raise PageError(f"page did not finish with a {figure_selector} within {timeout} s")
    if answer != "ready":
        raise PageError(answer)


def timed(driver, action, figure: str) -> float:
    """Seconds from `action()` until the rerun it starts has finished with `figure` drawn."""
    watch_runs(driver)
    started = time.perf_counter()
    action()
    wait_until_running(driver, timeout=3)
    wait_for_page(driver, figure, timeout=300)
    return time.perf_counter() - started


def settle(driver) -> None:
    """Let the last deltas paint, and check once more for an exception box."""
    from selenium.webdriver.common.by import By

    time.sleep(0.5)
    exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    if exceptions:
        raise PageError(exceptions[0].text)


_WATCH_RUNS = """
window.sodvizRuns = 0;
if (!window.sodvizWatch) {
  window.sodvizWatch = new MutationObserver((records) => {
    for (const record of records) {
      if (record.target.getAttribute("data-test-script-state") === "running") window.sodvizRuns += 1;
    }
  });
  window.sodvizWatch.observe(document.documentElement,
    {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]});
}
"""
# The page's own waits: `check` answers a string when done (null to go on); the script calls
# `done` once, with that answer or with null after `ms`, re-checking on every change of the page
# (at most every 20 ms) and every 250 ms (a figure's image loading changes no attribute).
_WAIT_IN_PAGE = """
const [ms, arg, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const check = %s;
let timer = null, finished = false;
const finish = (answer) => {
  if (finished) return;
  finished = true; observer.disconnect(); clearInterval(every); clearTimeout(timer); clearTimeout(limit);
  done(answer);
};
const look = () => { const answer = check(arg); if (answer !== null) finish(answer); };
const observer = new MutationObserver(() => {
  if (timer === null) timer = setTimeout(() => { timer = null; look(); }, 20);
});
observer.observe(document.documentElement, {subtree: true, childList: true, attributes: true});
const every = setInterval(look, 250);
const limit = setTimeout(() => finish(null), ms);
look();
"""
_RAN = """(arg) => {
  if (window.sodvizRuns > 0) { window.sodvizRuns = 0; return "ran"; }
  return document.querySelector('[data-testid="stApp"][data-test-script-state="running"]') ? "ran" : null;
}"""
_PAGE_READY = """(figure) => {
  const exception = document.querySelector('[data-testid="stException"]');
  if (exception) return exception.innerText || "an exception box";
  const idle = document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]');
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  return idle && !running && document.querySelector(figure) ? "ready" : null;
}"""


def _wait_in_page(driver, check: str, timeout: float, arg=None):
    """`check`'s answer, waited for inside the page (in slices of at most 60 s, one driver
    command each); None when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        part = min(left, 60.0)
        driver.set_script_timeout(part + 30)
        answer = driver.execute_async_script(_WAIT_IN_PAGE % check, int(part * 1000), arg)
        if answer is not None:
            return answer


def watch_runs(driver) -> None:
    """From now on, remember every start of a script run, however short: a run of 20 ms ends
    between two polls, and `wait_until_running` would then wait its whole timeout for it (a
    warm Home render read as 3 s). A new document (driver.get) forgets the watch."""
    driver.execute_script(_WATCH_RUNS)


def wait_until_running(driver, timeout: float = 5) -> bool:
    """Until the script starts its rerun (after a click), or has started one since
    `watch_runs` (a start is counted once); False when it never visibly did."""
    return _wait_in_page(driver, _RAN, timeout) is not None


def text_of(driver, selector: str) -> str:
    """The text of the first element matching selector as the page renders it (`innerText`, read
    in one script: no element handle to go stale as Streamlit replaces elements), or "" while
    there is none."""
    script = "const element = document.querySelector(arguments[0]); return element ? element.innerText : '';"
    return driver.execute_script(script, selector) or ""


def find_rendered(driver, selector: str, matches, what: str, timeout: float = 30):
    """The first element matching selector whose text satisfies matches, waiting for it to
    render: Streamlit draws a page's elements one by one and replaces them as it reruns, so an
    element can be missing or go stale for a moment after the text around it is there."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        try:
            for element in driver.find_elements(By.CSS_SELECTOR, selector):
                if matches(element.text.strip()):
                    return element
        except StaleElementReferenceException:
            pass
        if time.monotonic() > deadline:
            raise PageError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.2)


def click_button(driver, label: str, *, within: str = '[data-testid="stMain"]', timeout: float = 30) -> None:
    """Click the first button in `within` whose text contains label."""
    button = find_rendered(
        driver, f"{within} button", lambda text: label in text, f"button {label!r}", timeout
    )
    button.click()


_NAV_LINK = """(title) => Array.from(document.querySelectorAll('[data-testid="stSidebarNav"] a'))
  .find((link) => link.innerText.trim().endsWith(title)) || null"""


def open_page(driver, title: str, timeout: float = 30) -> None:
    """Click the sidebar's link to the page `title`, waiting for it to render. The link is looked
    up by the page itself (`_wait_in_page`): reading each link's text through the driver cost a
    headless Chromium and chromedriver about 48 ms of CPU a page switch, beside the other sessions."""
    link = _wait_in_page(driver, _NAV_LINK, timeout, title)
    if link is None:
        raise PageError(f"no page link {title!r} after {timeout:.0f} s")
    link.click()


def toggle(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    box = find_rendered(
        driver, '[data-testid="stCheckbox"] label', lambda text: text.startswith(label), f"toggle {label!r}"
    )
    box.click()
    time.sleep(0.5)
    if not box.find_element(By.CSS_SELECTOR, "input").is_selected():
        raise PageError(f"the toggle {label!r} did not switch on")


def choose_upload(driver) -> None:
    """Choose Upload on Home and wait for its file inputs."""
    from selenium.webdriver.common.by import By

    radios = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
    choice = next((r for r in radios if r.text.strip().endswith("Upload")), None)
    if choice is not None and not choice.find_element(By.CSS_SELECTOR, "input").is_selected():
        watch_runs(driver)
        choice.click()
        wait_until_running(driver, timeout=3)
    wait_for_page(driver, '[data-testid="stFileUploader"] input[type="file"]')


def send_file(driver, path: Path, *, index: int = 0) -> None:
    """Give a file to Home's `index`-th uploader (0: the image, 1: its annotations)."""
    from selenium.webdriver.common.by import By

    inputs = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stFileUploader"] input[type="file"]')
    inputs[index].send_keys(str(path))


def upload(driver, path: Path, *, index: int = 0) -> None:
    """Choose Upload on Home and give the file to its `index`-th uploader."""
    choose_upload(driver)
    send_file(driver, path, index=index)
    time.sleep(1)


def nudge_first_slider(driver) -> bool:
    """Press the right arrow on the page's first slider (a rerun); False when there is none."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    inputs = driver.find_elements(
        By.CSS_SELECTOR, '[data-testid="stMain"] [data-testid="stSlider"] input[type="range"]'
    )
    if not inputs:
        return False
    driver.execute_script("arguments[0].focus();", inputs[0])
    watch_runs(driver)
    ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()
    return True
