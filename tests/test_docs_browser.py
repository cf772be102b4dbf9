"""GET /docs in a real headless Chromium: the method list loads, a call shows its result.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them); without
them the test fails with a message saying so.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import ServerProcess, StartServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 20.0


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, no network beyond what the page asks for."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed: run `make test`, which installs "
            "Debian's chromium and chromium-driver"
        )
    profile = tempfile.mkdtemp(prefix="sbusr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--user-data-dir=" + profile,
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until_loaded(browser: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    """Wait until the page has rendered the method list; return the waiter for more."""
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "#status[data-loaded='1']")
        )
    )
    return wait


def call_from_page(browser: webdriver.Chrome, method: str, params_text: str | None) -> WebElement:
    """Type ``params_text`` (None: keep the page's template) into a method's form and press
    Call; return the element where the response appears."""
    section = browser.find_element(By.CSS_SELECTOR, f"section[data-method='{method}']")
    if params_text is not None:
        params = section.find_element(By.CSS_SELECTOR, "textarea.params")
        params.clear()
        params.send_keys(params_text)
    section.find_element(By.CSS_SELECTOR, "button.call").click()
    return section.find_element(By.CSS_SELECTOR, "pre.response")


def test_docs_page_lists_methods_and_makes_a_call(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    listed = [link.text for link in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert "echo" in listed and "greetings.greet" in listed
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='echo']")
    assert "Return txt unchanged." in section.text.replace("``", "")
    output = call_from_page(browser, "echo", '["hello from the browser"]')
    wait.until(lambda _: '"result": "hello from the browser"' in output.text)
    assert "HTTP 200" in output.text
    assert "error" not in (output.get_attribute("class") or "")
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched and all(url.startswith(server.url + "/") for url in fetched), fetched  # offline


def test_docs_page_shows_an_error_response(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    template = browser.find_element(
        By.CSS_SELECTOR, "section[data-method='greetings.greet'] textarea"
    )
    assert template.get_attribute("value") == '{"name":null,"times":1}'
    output = call_from_page(browser, "greetings.greet", None)
    wait.until(lambda _: "-32602" in output.text)
    assert "error" in (output.get_attribute("class") or "")


def test_docs_page_needs_no_token_but_asks_for_it(
    start_server: StartServer, browser: webdriver.Chrome
) -> None:
    server = start_server(env={"SBUSR_AUTH_TOKEN": "sesame"})
    assert server.http.get("/docs").status_code == 200
    assert server.http.get("/openrpc.json").status_code == 401
    browser.get(server.url + "/docs")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT_S).until(lambda _: "enter the token" in status.text)
    browser.find_element(By.ID, "token").send_keys("sesame" + Keys.ENTER)
    wait = wait_until_loaded(browser)
    output = call_from_page(browser, "add", "[2, 3]")
    wait.until(lambda _: '"result": 5' in output.text)
