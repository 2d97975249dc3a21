"""The browser test's tools: the app served live by uvicorn, headless chromium, and the checks every page gets.

Chromium and chromedriver are Debian's (``make browser`` installs them). Both paths are passed explicitly:
without them Selenium Manager tries to download a driver, which these machines cannot.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
#: Where each page's screenshot goes (git-ignored).
SCREENSHOTS = ROOT / ".screenshots"
MISSING_BROWSER = "chromium/chromedriver not found: run `make browser`"
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1400")
#: Seconds to wait for the server to start, a page to settle or an htmx swap to land.
STARTUP_SECONDS = 30
WAIT_SECONDS = 15
_COORDINATE = re.compile(r"-?\d+(?:\.\d+)?,-?\d+(?:\.\d+)?")


@contextmanager
def live_server(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a daemon thread; yields its base URL.

    The socket is bound here and handed to uvicorn, so no other process can take the port in between.

    Raises:
        RuntimeError: The server stopped or did not start within STARTUP_SECONDS.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn on port {port} stopped while starting: see the log above for why")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {port} did not start within {STARTUP_SECONDS} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """Headless chromium driven by chromedriver, with the browser console's messages kept for :func:`check_page`.

    Fails the test (not skips it) when either program is missing: the browser test is part of ``make test``.
    """
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail(MISSING_BROWSER, pytrace=False)
    options = Options()
    options.binary_location = binary
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_AVOID_STATS", "true")  # Selenium would report usage statistics over the network
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def get_json(url: str) -> Any:
    """The JSON a page's ``/api/...`` twin answers at ``url``."""
    with urllib.request.urlopen(url, timeout=WAIT_SECONDS) as response:
        return json.load(response)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """Wait until ``condition`` returns something truthy (an htmx swap can replace elements mid-check).

    Raises:
        TimeoutException: After WAIT_SECONDS, with ``what`` in its message.
    """
    wait: WebDriverWait[WebDriver] = WebDriverWait(
        driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, f"waited {WAIT_SECONDS} s for {what}")


def open_page(driver: WebDriver, url: str) -> None:
    """Load ``url`` and wait until the document and its deferred scripts (htmx) have run."""
    driver.get(url)
    wait_for(
        driver,
        lambda d: d.execute_script("return document.readyState === 'complete' && window.htmx !== undefined"),
        f"{url} to load with htmx",
    )


def check_page(driver: WebDriver, base_url: str) -> None:
    """No JavaScript error in the console (a missing icon or script would be one), and every script,
    stylesheet and request stayed on ``base_url``."""
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{driver.current_url}: errors in the browser console: {errors}"
    assets = driver.execute_script(
        "return [...document.querySelectorAll('script[src]')].map(e => e.getAttribute('src'))"
        ".concat([...document.querySelectorAll('link[href]')].map(e => e.getAttribute('href')))"
    )
    assert assets, f"{driver.current_url}: no script or stylesheet found (the base template links both)"
    elsewhere = [a for a in assets if not a.startswith("/") or a.startswith("//")]
    assert not elsewhere, f"{driver.current_url}: assets from another host: {elsewhere}"
    requested = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    away = [url for url in requested if not url.startswith(base_url + "/")]
    assert not away, f"{driver.current_url}: requests to another host: {away}"


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the whole page (beyond the window) as ``.screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 1000, f"{path}: the screenshot is (nearly) empty"
    return path


def mark_window(driver: WebDriver) -> str:
    """Set a marker on ``window``: it survives an htmx swap, not a full page load."""
    marker = uuid4().hex
    driver.execute_script("window.__browserTestMarker = arguments[0]", marker)
    return marker


def assert_not_reloaded(driver: WebDriver, marker: str) -> None:
    """The page set ``marker`` with :func:`mark_window` is still the one loaded (no navigation happened)."""
    found = driver.execute_script("return window.__browserTestMarker || null")
    assert found == marker, f"{driver.current_url}: the page was reloaded (the window marker is gone)"


def path_points(d: str) -> int:
    """How many points an SVG path's ``d`` (``M x,y L x,y ...``) draws."""
    return len(_COORDINATE.findall(d))
