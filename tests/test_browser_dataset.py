"""The Dataset page in headless Chromium: analyse the sample scenes from the page, pick an image
from the table (the current image of every page), open a missed object on Attention."""

from __future__ import annotations

import time

from browser import (
    IMAGE,
    PLOT,
    SCREENSHOTS,
    chromium,
    click_button,
    needs_chromium,
    open_page,
    settle,
    streamlit_server,
    text_of,
    wait_for_page,
)

pytestmark = needs_chromium()


def _main_text(driver) -> str:
    return text_of(driver, '[data-testid="stMain"]')


def test_the_dataset_page_in_chromium(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log = SCREENSHOTS.parent / "streamlit_dataset.log"
    with streamlit_server(log, env={"SODVIZ_STORE": str(tmp_path / "store")}) as url, chromium() as driver:
        driver.set_window_size(1400, 2400)
        driver.get(url)
        wait_for_page(driver, IMAGE)
        open_page(driver, "Dataset")
        deadline = time.monotonic() + 60
        while "Nothing stored for Sample scenes" not in _main_text(driver):
            assert time.monotonic() < deadline, _main_text(driver)
            time.sleep(0.2)
        click_button(driver, "Analyse the dataset")
        wait_for_page(driver, PLOT, timeout=300)  # the progress fragment reruns the page when the job ends
        settle(driver)
        text = _main_text(driver)
        assert "Missed objects" in text and "Compare two runs" in text, text
        driver.save_screenshot(str(SCREENSHOTS / "dataset.png"))
        tables = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
        images_table = tables[1]
        ActionChains(driver).move_to_element_with_offset(
            images_table, -images_table.size["width"] // 2 + 18, -images_table.size["height"] // 2 + 52
        ).click().perform()
        deadline = time.monotonic() + 30
        while "is now the current image" not in _main_text(driver):
            assert time.monotonic() < deadline, "picking a row did not make it the current image"
            time.sleep(0.2)
        picked = _main_text(driver).split(" is now the current image")[0].split("\n")[-1]
        sidebar = text_of(driver, '[data-testid="stSidebar"]')
        assert picked in sidebar, (picked, sidebar)
        click_button(driver, "Open on Attention")
        deadline = time.monotonic() + 60
        while not text_of(driver, "h1").startswith("Attention"):
            assert time.monotonic() < deadline, "the patch's button did not open the Attention page"
            time.sleep(0.2)
        wait_for_page(driver, PLOT, timeout=120)
        settle(driver)
        driver.save_screenshot(str(SCREENSHOTS / "dataset_to_attention.png"))
    assert "Traceback" not in log.read_text()
