"""The demo in a real browser: headless Chromium, driven by Playwright, against a served app.

Playwright's own browser download cannot work offline, so this uses Debian's `chromium` through
`executable_path`. Where no Chromium is installed the test is skipped on a developer's machine,
but in CI (CI=true) it fails: a browser test that silently never runs protects nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nst_plugin import plugins
from nst_plugin.images import Picture, save_image
from tests.conftest import make_image

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"
)


def _needed(what: str, why: str) -> None:
    """Skip locally; fail loudly in CI."""
    message = f"{what} is missing: {why}"
    if IN_CI:
        pytest.fail(f"{message} (CI must run the browser test)", pytrace=False)
    pytest.skip(message)


def chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        _needed("chromium", "apt-get install -y chromium (the CI script does this)")
    return str(path)


@pytest.fixture(scope="module")
def app_url(random_decoder_file: Path) -> Iterator[str]:
    try:
        from nst_plugin_hosts.gradio_app import Limits, build_app, launch
    except ModuleNotFoundError as exc:
        _needed(str(exc.name), "pip install -e '.[test]'")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(plugins.ENV_VAR, "")
        plugins.reset()
        limits = Limits(max_pixels=200_000, max_size=128)
        pinned = {"decoder": str(random_decoder_file)}
        app = build_app(limits=limits, defaults={"size": 64}, pinned=pinned)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = launch("127.0.0.1", port, app=app, block=False, quiet=True)
        try:
            yield url
        finally:
            app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError:
        _needed("playwright", "pip install -e '.[test]'")
    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app_url: str):  # noqa: ANN001, ANN201 - Playwright's types are optional
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_url, wait_until="domcontentloaded")
    page.wait_for_selector("#run")
    yield page
    context.close()


def _uploads(folder: Path) -> dict[str, Path]:
    files = {"photo": folder / "photo.png", "art": folder / "art.png"}
    save_image(Picture(make_image(96, 128, "photo")), files["photo"])
    save_image(Picture(make_image(80, 80, "art", seed=1)), files["art"])
    return files


def test_upload_two_images_run_adain_and_see_the_result(page, tmp_path: Path) -> None:  # noqa: ANN001
    files = _uploads(tmp_path)
    page.locator("#content input[type=file]").set_input_files(str(files["photo"]))
    page.locator("#style-1 input[type=file]").set_input_files(str(files["art"]))
    page.wait_for_selector("#content img")
    page.wait_for_selector("#style-1 img")
    page.locator("#method").get_by_label("adain").check()
    # The schema's Param.methods decides what shows: AdaIN's alpha, not optimization's iterations.
    page.wait_for_selector("#p-alpha", state="visible")
    page.wait_for_selector("#p-iterations", state="hidden")
    page.click("#run")
    result = page.wait_for_selector("#result img")
    page.wait_for_selector("#gallery img")
    page.wait_for_selector("#status >> text=Done.")
    assert result.get_attribute("src")
    assert page.locator("#download").get_by_text(".png").count() >= 1
    shot = tmp_path / "demo-adain.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_an_oversize_upload_shows_a_message_not_a_trace(page, tmp_path: Path) -> None:  # noqa: ANN001
    from PIL import Image

    files = _uploads(tmp_path)
    big = tmp_path / "big.png"
    Image.new("RGB", (600, 400), (120, 90, 60)).save(big)
    page.locator("#content input[type=file]").set_input_files(str(big))
    page.locator("#style-1 input[type=file]").set_input_files(str(files["art"]))
    page.wait_for_selector("#style-1 img")
    page.click("#run")
    toast = page.get_by_text("at most 0.2 megapixels")
    toast.wait_for(state="visible")
    assert "Traceback" not in page.content()
    page.wait_for_timeout(800)  # the toast slides in; let the screenshot show it
    page.screenshot(path=str(tmp_path / "demo-oversize.png"), full_page=True)


def test_fast_picks_a_preset_by_its_painting_and_needs_no_style(page, tmp_path: Path) -> None:  # noqa: ANN001
    files = _uploads(tmp_path)
    page.locator("#content input[type=file]").set_input_files(str(files["photo"]))
    page.wait_for_selector("#content img")
    page.locator("#method").get_by_label("fast").check()
    page.wait_for_selector("#style-1", state="hidden")  # a preset carries its painting
    page.wait_for_selector("#models img")
    page.locator("#models img").first.click()  # choose the model by its painting
    if os.environ.get("NST_SCREENSHOTS"):  # refresh the README's picture on request
        page.screenshot(path=os.environ["NST_SCREENSHOTS"], full_page=False)
    page.click("#run")
    page.wait_for_selector("#status >> text=Done.")
    assert "fast" in page.locator("#gallery").inner_text()
    shot = tmp_path / "demo-fast.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
