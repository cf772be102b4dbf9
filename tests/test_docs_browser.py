"""GET /docs in a real headless Chromium: the method list loads, the filter hides what does not
match, a form call and a raw JSON call show their result, copy-as-curl gives a command that
works, the REST routes of /openapi.json are listed, the narrow layout folds the index, and the
page fetches nothing from elsewhere.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them); without
them the test fails with a message saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
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
    """Type ``params_text`` (None: keep the form as it is) as the method's raw JSON params
    and press Call; return the element where the response appears."""
    section = browser.find_element(By.CSS_SELECTOR, f"section[data-method='{method}']")
    if params_text is not None:
        section.find_element(By.CSS_SELECTOR, "button.tab-json").click()
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
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='greetings.greet']")
    section.find_element(By.CSS_SELECTOR, "button.tab-json").click()
    template = section.find_element(By.CSS_SELECTOR, "textarea.params")
    assert json.loads(template.get_attribute("value") or "") == {"name": "string", "times": 1}
    output = call_from_page(browser, "greetings.greet", '{"name": "", "times": 1}')
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


def test_filter_hides_the_methods_and_routes_that_do_not_match(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    echo = browser.find_element(By.CSS_SELECTOR, "section[data-method='echo']")
    greet = browser.find_element(By.CSS_SELECTOR, "section[data-method='greetings.greet']")
    route = browser.find_element(By.CSS_SELECTOR, "details[data-route='GET /sys/status']")
    assert echo.is_displayed() and greet.is_displayed() and route.is_displayed()
    browser.find_element(By.ID, "filter").send_keys("greet")
    wait.until(lambda _: not echo.is_displayed())
    assert greet.is_displayed() and not route.is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "nav a[data-method='echo']").is_displayed()
    browser.find_element(By.ID, "filter").send_keys("nothing-like-this")
    wait.until(lambda _: browser.find_element(By.ID, "nomatch").is_displayed())


def test_form_call_on_add_shows_the_result(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='add']")
    fields = section.find_elements(By.CSS_SELECTOR, ".form input")
    assert [field.get_attribute("value") for field in fields] == ["1", "1"]  # never null
    fields[0].clear()
    fields[0].send_keys("40")
    fields[1].clear()
    fields[1].send_keys("2")
    section.find_element(By.CSS_SELECTOR, "button.call").click()
    output = section.find_element(By.CSS_SELECTOR, "pre.response")
    wait.until(lambda _: '"result": 42' in output.text)
    assert "HTTP 200" in output.text


def test_form_of_a_method_with_model_params_calls_with_its_example(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    """``orders.total`` takes an ``Order`` (a ``$ref`` to components): the example is an order."""
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='orders.total']")
    order = section.find_element(By.CSS_SELECTOR, ".form input")
    assert '"lines"' in (order.get_attribute("value") or "")
    section.find_element(By.CSS_SELECTOR, "button.call").click()
    output = section.find_element(By.CSS_SELECTOR, "pre.response")
    wait.until(lambda _: '"result"' in output.text)
    assert '"currency": "EUR"' in output.text


def test_copy_as_curl_gives_a_command_that_works(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='echo']")
    field = section.find_element(By.CSS_SELECTOR, ".form input")
    field.clear()
    field.send_keys('"it\'s a quote"')
    section.find_element(By.CSS_SELECTOR, "button.curl").click()
    command = section.find_element(By.CSS_SELECTOR, "pre.curl")
    wait.until(lambda _: command.text.startswith("curl "))
    assert server.url + "/rpc" in command.text
    result = subprocess.run(
        ["bash", "-c", command.text], capture_output=True, text=True, timeout=30, check=True
    )
    answer = json.loads(result.stdout)
    assert answer["result"] == "it's a quote"


def test_rest_routes_of_openapi_are_listed(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait_until_loaded(browser)
    listed = {
        node.get_attribute("data-route")
        for node in browser.find_elements(By.CSS_SELECTOR, "details.route")
    }
    paths = server.http.get("/openapi.json").json()["paths"]
    expected = {f"{verb.upper()} {path}" for path, item in paths.items() for verb in item}
    assert listed == expected
    assert {"POST /api/flow", "GET /api/jobs", "GET /sys/status", "POST /rpc"} <= listed


def test_reST_markup_is_shown_as_code_and_the_summary_once(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/docs")
    wait_until_loaded(browser)
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='add']")
    assert "``" not in section.text
    assert section.text.count("Return a + b") == 1
    codes = [code.text for code in section.find_elements(By.CSS_SELECTOR, ".summary code")]
    assert codes == ["a + b"]


def test_narrow_screen_folds_the_index(server: ServerProcess, browser: webdriver.Chrome) -> None:
    browser.set_window_size(420, 900)
    browser.get(server.url + "/docs")
    wait = wait_until_loaded(browser)
    nav = browser.find_element(By.ID, "nav")
    section = browser.find_element(By.CSS_SELECTOR, "section[data-method='echo']")
    assert not nav.is_displayed()
    assert section.rect["width"] > 300  # the methods take the screen, not the index
    browser.find_element(By.ID, "menu").click()
    wait.until(lambda _: nav.is_displayed())
    browser.find_element(By.CSS_SELECTOR, "nav a[data-method='echo']").click()
    wait.until(lambda _: not nav.is_displayed())


def test_browser_opening_the_root_lands_on_docs(
    server: ServerProcess, browser: webdriver.Chrome
) -> None:
    browser.get(server.url + "/")
    wait_until_loaded(browser)
    assert browser.current_url == server.url + "/docs"
