"""The page at / in a real headless browser (Debian's chromium, driven by selenium): an image picked, a sentence
typed, the class shown. Skipped only where no chromium is installed and CI did not ask for one."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.test_serve import Server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# .ci/run sets it where it could install the browser: there the test must run, not skip.
if os.environ.get("REQUIRE_BROWSER") != "1" and not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "no chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module's tests (a start costs seconds); each test loads its own server's page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=800,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def shown_label(browser) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(
        lambda b: b.find_element(By.ID, "label").text or b.find_element(By.ID, "error").text
    )
    assert browser.find_element(By.ID, "error").text == ""
    return browser.find_element(By.ID, "label").text


def test_the_page_classifies_an_image_and_a_sentence(browser, fashion_exported, tiny_sst2, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "garment.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)).save(image)

    servers = [
        Server("fashion_cnn", "--model", str(fashion_exported)),  # an export and a checkpoint: both kinds
        Server("sst2_bilstm", "--ckpt", str(tiny_sst2[1])),
    ]
    try:
        fashion, sst2 = servers
        browser.get(f"http://127.0.0.1:{fashion.port}/")
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "image-input").is_displayed())
        browser.find_element(By.ID, "file").send_keys(str(image))
        label = shown_label(browser)
        expected = fashion.predict({"inputs": [image_base64(image)], "resize": True})[1]["predictions"][0]
        assert label == expected["label"] and len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 10
        assert browser.find_element(By.ID, "note").text == "resized from 40x40"
        browser.save_screenshot(str(tmp_path / "fashion.png"))

        browser.get(f"http://127.0.0.1:{sst2.port}/")
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "text-input").is_displayed())
        browser.find_element(By.ID, "sentence").send_keys("good the film is")
        browser.find_element(By.ID, "send").click()
        expected = sst2.predict({"inputs": ["good the film is"]})[1]["predictions"][0]["label"]
        assert shown_label(browser) == expected and len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 2
    finally:
        for server in servers:
            server.stop()
            server.kill()


def image_base64(path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def test_the_page_asks_a_keyed_server_for_its_key(browser, fashion_exported, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "garment.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)).save(image)
    server = Server("fashion_cnn", "--model", str(fashion_exported), key="a-key-for-the-page-test")
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "key-input").is_displayed())
        assert not browser.find_element(By.ID, "image-input").is_displayed()
        browser.find_element(By.ID, "key").send_keys("a-key-for-the-page-test")
        browser.find_element(By.ID, "use-key").click()
        WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "image-input").is_displayed())
        browser.find_element(By.ID, "file").send_keys(str(image))
        expected = server.predict({"inputs": [image_base64(image)], "resize": True})[1]["predictions"][0]["label"]
        assert shown_label(browser) == expected
    finally:
        server.stop()
        server.kill()
