"""The status page in a real browser: Debian's chromium, driven through Selenium.

These tests run whenever chromium and its driver are installed, and must run in CI (``CI`` set:
a missing browser fails them instead of skipping). Set ``SERVE_SCREENSHOTS=<folder>`` to save a
screenshot of each main view there (docs/images/ holds the ones docs/serve.md shows).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing import Project
from tests.serve_support import SeededProject, seeded_project, serving, wait_for

pytestmark = pytest.mark.slow  # a real browser per test: scheduled first (conftest.py)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _browser_missing() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra installs it)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _browser_missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {problem}")
        pytest.skip(f"browser tests need the system browser: {problem}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download anything
    profile = tempfile.mkdtemp(prefix="serve-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def seeded(project: Project) -> Iterator[SeededProject]:
    with seeded_project(project) as seeded:
        yield seeded


def _screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("SERVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _text(driver: Any, css: str) -> str:
    """The element's text; found again when a live update replaced it between the look-up
    and the read (the page swaps its live parts in place)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(50):
        try:
            return str(driver.find_element(By.CSS_SELECTOR, css).text)
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} was replaced 50 times in a row while being read")


def _row_state(driver: Any, task: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        link = driver.find_element(By.CSS_SELECTOR, f'#tasks a[href="/tasks/{task}"]')
        row = link.find_element(By.XPATH, "./ancestor::tr")
        return str(row.get_attribute("data-state"))
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def test_task_list_run_and_stage_output_in_the_browser(browser: Any, seeded: SeededProject) -> None:
    from selenium.webdriver.common.by import By

    with serving(seeded.project) as served:
        browser.get(served.url)
        wait_for(lambda: _row_state(browser, "busy") == "running", "the task list")
        assert _row_state(browser, "done") == "succeeded"
        assert _row_state(browser, "broken") == "failed"
        assert _row_state(browser, "frozen") == "stale"
        assert _row_state(browser, "0101") == "never run"
        git_panel = _text(browser, ".git")
        assert "main" in git_panel and "Pipelines of the seeded project" in git_panel
        assert "dirty" in git_panel  # the runs folder and the stages' files are not committed
        _screenshot(browser, "tasks")

        # filter by state: only failed tasks remain
        browser.get(served.url + "?state=failed")
        rows = browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")
        assert [r.get_attribute("data-state") for r in rows] == ["failed"]

        # click through: task -> run -> stage, and read the stage's output
        browser.get(served.url)
        browser.find_element(By.CSS_SELECTOR, 'a[href="/tasks/broken"]').click()
        wait_for(lambda: "Task broken" in browser.title, "the task page")
        _screenshot(browser, "task")
        browser.find_element(By.CSS_SELECTOR, "#runs tbody a").click()
        wait_for(lambda: browser.title.startswith("Run "), "the run page")
        assert "stage:test:failed" in _text(browser, ".facts")
        _screenshot(browser, "run")
        browser.find_element(By.LINK_TEXT, "lint").click()
        wait_for(lambda: browser.title.startswith("Stage lint"), "the stage page")
        output = wait_for(lambda: _text(browser, "#output"), "the stage's output")
        # what the stage printed is shown as text, and the script it printed never ran
        assert '<script>document.title = "pwned"</script>' in output
        assert "pwned" not in browser.title
        assert browser.find_elements(By.CSS_SELECTOR, "#output script") == []
        wait_for(lambda: "(complete)" in _text(browser, "#output-state"), "the output to end")


def test_a_running_stage_is_followed_live_without_reload(
    browser: Any, seeded: SeededProject
) -> None:
    run_id = seeded.manifest_of("busy")["run_id"]
    with serving(seeded.project) as served:
        browser.get(f"{served.url}runs/{run_id}/stages/work?task=busy")
        browser.execute_script("window.__sameDocument = 'yes'")
        first = wait_for(lambda: _text(browser, "#output").count("tick"), "the first ticks")
        wait_for(
            lambda: _text(browser, "#output").count("tick") > first + 2,
            "new output lines to arrive without a reload",
        )
        assert "running" in _text(browser, "#live .facts")
        _screenshot(browser, "stage-live")
        seeded.release()
        wait_for(lambda: "released" in _text(browser, "#output"), "the last line of output")
        wait_for(lambda: "(complete)" in _text(browser, "#output-state"), "the output to end")
        wait_for(
            lambda: "succeeded" in _text(browser, "#live .facts"),
            "the stage's status to change on the page",
        )
        assert browser.execute_script("return window.__sameDocument") == "yes"


def test_the_task_list_follows_new_runs_without_reload(browser: Any, seeded: SeededProject) -> None:
    with serving(seeded.project) as served:
        browser.get(served.url)
        wait_for(lambda: _row_state(browser, "busy") == "running", "the task list")
        browser.execute_script("window.__sameDocument = 'yes'")
        seeded.project.start_json("ok", "--task", "arrived")
        wait_for(lambda: _row_state(browser, "arrived") == "succeeded", "the new task to appear")
        seeded.release()
        wait_for(lambda: _row_state(browser, "busy") == "succeeded", "the running run to finish")
        assert browser.execute_script("return window.__sameDocument") == "yes"


def test_keyboard_only_and_a_narrow_screen(browser: Any, seeded: SeededProject) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with serving(seeded.project) as served:
        browser.set_window_size(360, 800)
        try:
            browser.get(served.url)
            wait_for(lambda: _row_state(browser, "broken") == "failed", "the task list")
            width = browser.execute_script("return document.documentElement.scrollWidth")
            inner = browser.execute_script("return window.innerWidth")
            assert width <= inner, f"the page is {width} px wide in a {inner} px window"
            _screenshot(browser, "tasks-360px")
            # Tab from the top reaches the link of task 'broken'; Enter follows it
            body = browser.find_element(By.TAG_NAME, "body")
            body.send_keys(Keys.TAB)
            for _ in range(60):
                active = browser.switch_to.active_element
                if (active.get_attribute("href") or "").endswith("/tasks/broken"):
                    break
                active.send_keys(Keys.TAB)
            else:
                raise AssertionError("Tab never reached the link of task 'broken'")
            browser.switch_to.active_element.send_keys(Keys.ENTER)
            wait_for(lambda: "Task broken" in browser.title, "the task page, by keyboard")
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= browser.execute_script("return window.innerWidth")
        finally:
            browser.set_window_size(1280, 900)


def test_served_page_loads_nothing_from_another_host(browser: Any, seeded: SeededProject) -> None:
    with serving(seeded.project) as served:
        browser.get(served.url)
        wait_for(lambda: _row_state(browser, "done") == "succeeded", "the task list")
        hosts = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
        )
        own = served.url.split("/")[2]
        assert hosts and all(host == own for host in hosts), hosts
