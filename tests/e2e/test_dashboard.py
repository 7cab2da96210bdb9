"""The dashboard in a real headless Chromium (Debian's package), driven by Playwright."""

import json
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"


def api(process, path, method="GET"):
    request = urllib.request.Request(process.url(path), method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_dashboard_live_controls_and_filters(service_process, browser):
    process = service_process({"quality_injection": {"enabled": True, "error_rate": 0.1}}).start()
    process.wait_http()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(process.url("/"))

    page.wait_for_function("document.querySelector('[data-testid=mode]').textContent === 'emulated'")
    page.wait_for_function("Number(document.querySelector('[data-testid=events-count]').textContent) >= 1",
                           timeout=10_000)
    before = int(page.text_content("[data-testid=events-count]"))
    page.wait_for_function(f"Number(document.querySelector('[data-testid=events-count]').textContent) > {before}",
                           timeout=5_000)  # the counter moves while we watch
    page.wait_for_function("document.querySelectorAll('#batches tbody tr').length > 0")

    # where the data is, and a read snippet for the chosen engine (the snippets themselves run in test_api)
    data_dir = api(process, "/api/dataset")[1]["data_dir"]
    page.wait_for_function("document.querySelector('[data-testid=data-dir]').textContent !== '–'")
    assert page.text_content("[data-testid=data-dir]") == data_dir
    assert f"read_json('{data_dir}/raw/events/*/events.jsonl'" in page.text_content("[data-testid=snippet]")
    page.select_option("[data-testid=engine]", "spark")
    assert "spark.read.schema" in page.text_content("[data-testid=snippet]")
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # log filter: provoke a WARNING (clean refused while running), then filter on it
    assert api(process, "/api/clean", "POST")[0] == 409
    page.wait_for_timeout(800)  # logs reach the store every 0.5 s
    page.select_option("[data-testid=level]", "WARNING")
    page.wait_for_function("[...document.querySelectorAll('#logs li')].length > 0 && "
                           "[...document.querySelectorAll('#logs li')].every(i => i.dataset.level !== 'INFO')")
    levels = page.eval_on_selector_all("#logs li", "items => items.map(i => i.dataset.level)")
    assert levels and set(levels) <= {"WARNING", "ERROR", "CRITICAL"}
    assert "clean refused" in page.text_content("#logs")
    page.select_option("[data-testid=level]", "")
    page.wait_for_function("[...document.querySelectorAll('#logs li')].some(i => i.dataset.level === 'INFO')")

    # pause: the page and the API both say paused
    page.click("[data-testid=pause]")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'paused'")
    assert api(process, "/api/health")[1]["status"] == "paused"

    # clean asks for confirmation: dismissing removes nothing, accepting cleans
    dialogs: list[str] = []

    def answer(dialog, accept):
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("[data-testid=clean]")
    page.wait_for_timeout(500)
    assert dialogs and "cannot be undone" in dialogs[0]
    assert api(process, "/api/health")[1]["company_generator"]["total_batches"] > 0
    page.once("dialog", lambda d: answer(d, True))
    page.click("[data-testid=clean]")
    page.wait_for_function("document.querySelector('[data-testid=companies-count]').textContent === '0'")
    assert api(process, "/api/health")[1]["company_generator"]["total_batches"] == 0

    page.click("[data-testid=resume]")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'running'")
    page.wait_for_function("Number(document.querySelector('[data-testid=companies-count]').textContent) >= 1",
                           timeout=5_000)  # baseline regenerated after the clean

    assert console_errors == []

    # the service going away is said clearly; only the browser's own network errors may follow
    process.kill9()
    page.wait_for_selector("[data-testid=offline]:not([hidden])", timeout=5_000)
    page.wait_for_timeout(1500)
    assert page.text_content("[data-testid=status]") == "unreachable"
    page.screenshot(path=str(ARTIFACTS / "dashboard-offline.png"))
    assert [e for e in console_errors if not e.startswith("Failed to load resource: net::")] == []
