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
    page.select_option("[data-testid=level]", "WARNING")
    page.wait_for_function("document.querySelector('#logs').textContent.includes('clean refused')",
                           timeout=10_000)  # the log reaches the store within 0.5 s, the page reads it every 3 s
    levels = page.eval_on_selector_all("#logs li", "items => items.map(i => i.dataset.level)")
    assert levels and set(levels) <= {"WARNING", "ERROR", "CRITICAL"}
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


@pytest.fixture
def corrupt_silver():
    """Drop one row from the oldest silver events file: a table that no longer equals the expectation."""
    import pyarrow.parquet as pq

    def corrupt(data_dir) -> str:
        part = sorted((data_dir / "silver" / "events").glob("part-*.parquet"))[0]
        table = pq.read_table(part)
        pq.write_table(table.slice(1), part)
        return table.slice(0, 1).column("event_id")[0].as_py()

    return corrupt


def test_dashboard_pipeline_panel(service_process, browser, tmp_path, corrupt_silver):
    process = service_process({"quality_injection": {"enabled": True, "error_rate": 0.1}}).start("--with-pipeline")
    process.wait_http()
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    console_errors: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(process.url("/"))
    number = "Number(document.querySelector('[data-testid={}]').textContent.replace(/,/g, ''))"
    page.wait_for_function(f"{number.format('pipeline-silver-rows')} > 0", timeout=20_000)
    silver = int(page.text_content("[data-testid=pipeline-silver-rows]").replace(",", ""))
    page.wait_for_function(f"{number.format('pipeline-silver-rows')} > {silver}", timeout=10_000)  # it rises
    assert int(page.text_content("[data-testid=pipeline-gold-rows]").replace(",", "")) > 0
    assert page.text_content("[data-testid=pipeline-state]").startswith("running")
    page.wait_for_function("/^\\d+ \\/ \\d+$/.test(document.querySelector('[data-testid=pipeline-gold-latency]')"
                           ".textContent)")  # p50 / p99 in ms
    page.wait_for_function("document.querySelector('[data-testid=pipeline-check]').textContent === "
                           "'silver = expected'", timeout=30_000)
    assert "equal" in page.get_attribute("[data-testid=pipeline-check]", "class")
    assert page.text_content("[data-testid=pipeline-reasons]")  # quarantine counts by reason
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-pipeline.png"), full_page=True)

    lost = corrupt_silver(tmp_path / "data")
    page.wait_for_function("document.querySelector('[data-testid=pipeline-check]').textContent === "
                           "'silver ≠ expected'", timeout=40_000)
    assert "different" in page.get_attribute("[data-testid=pipeline-check]", "class")
    assert "silver/events: 1 missing" in page.get_attribute("[data-testid=pipeline-check]", "title")
    assert lost
    assert not console_errors
    assert process.terminate(timeout=30) == 0
