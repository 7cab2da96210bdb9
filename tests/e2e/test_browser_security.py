"""In a real Chromium: a page from another origin cannot pause the service or delete its data, and
the dashboard works end to end with a token (issue #11)."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow
TOKEN = "browser-test-token"

EVIL_PAGE = """<!doctype html><html><body>
<form id="pause" method="POST" action="{service}/api/pause" enctype="text/plain"><input name="a" value="b"></form>
<form id="clean" method="POST" action="{service}/api/clean"><input name="x" value="1"></form>
<script>
async function attack(path) {{
  const attempts = [
    fetch("{service}" + path, {{method: "POST", mode: "no-cors"}}),
    fetch("{service}" + path, {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                               body: "{{}}"}}),
    fetch("{service}" + path, {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: "{{}}"}})
      .then(r => "read " + r.status, e => "blocked: " + e),
  ];
  return Promise.all(attempts.map(p => p.then(r => String(r.status ?? r), e => "error: " + e)));
}}
</script></body></html>"""


def status_of(process, path, method="GET"):
    request = urllib.request.Request(process.url(path), method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def batch_folders(process) -> set[str]:
    data = process.config_path.parent / "data" / "raw"
    return {f"{stream}/{entry.name}" for stream in ("companies", "events") for entry in (data / stream).iterdir()}


@pytest.fixture
def evil_site(service_process):
    servers = []

    def serve(service_url: str) -> str:
        page = EVIL_PAGE.format(service=service_url).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()


def test_a_page_from_another_origin_can_neither_pause_nor_clean(service_process, browser, evil_site):
    process = service_process({}).start()
    process.wait_http()
    wait_until(lambda: status_of(process, "/api/health")["driver_batches"] >= 1, timeout=15,
               what="the first batches (start-up runs in the background)")
    page = browser.new_page()
    page.goto(evil_site(process.url("")))

    results = page.evaluate("attack('/api/pause')")
    assert all(r.startswith(("0", "error", "blocked")) for r in results), results  # opaque or refused
    with page.expect_navigation():
        page.eval_on_selector("#pause", "form => form.submit()")
    assert "cross-site request refused" in page.content()
    assert status_of(process, "/api/health")["paused"] is False

    status_of(process, "/api/pause", "POST")  # the owner pauses (no Origin: a script, not a page)
    before = batch_folders(process)  # a window in flight when the pause came may still be published
    assert len(before) >= 2
    page.goto(evil_site(process.url("")))
    page.evaluate("attack('/api/clean')")
    with page.expect_navigation():
        page.eval_on_selector("#clean", "form => form.submit()")
    assert "cross-site request refused" in page.content()
    assert batch_folders(process) >= before  # nothing removed
    assert status_of(process, "/api/health")["company_batches"] >= 1


def test_the_dashboard_asks_for_the_token_once_and_then_works_end_to_end(service_process, browser):
    process = service_process({"api": {"token": TOKEN, "protect_reads": True}}).start()
    process.wait_http()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    console_errors: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(process.url("/"))

    page.wait_for_selector("[data-testid=auth]:not([hidden])", timeout=10_000)  # 401 on the reads: asked
    page.fill("[data-testid=token-input]", TOKEN)
    page.click("[data-testid=token-save]")
    page.wait_for_selector("[data-testid=auth]", state="hidden")
    assert page.evaluate("sessionStorage.getItem('fleetgen.api-token')") == TOKEN
    page.wait_for_function("document.querySelectorAll('#logs li').length > 0", timeout=10_000)
    page.wait_for_function("document.querySelectorAll('#batches tbody tr').length > 0", timeout=10_000)

    page.click("[data-testid=pause]")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'paused'")
    # the status may turn paused from the service's own event before the POST's answer is shown
    page.wait_for_function("document.querySelector('#message').textContent.includes('paused')")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=clean]")
    page.wait_for_function("document.querySelector('#message').textContent.startsWith('cleaned:')")
    page.wait_for_function("document.querySelector('[data-testid=companies-count]').textContent === '0'")
    page.click("[data-testid=resume]")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'running'")
    page.wait_for_function("Number(document.querySelector('[data-testid=events-count]').textContent) >= 1",
                           timeout=10_000)  # the live stream (token in its query) and health move on
    assert page.is_hidden("[data-testid=auth]")  # never asked again in this tab
    assert console_errors == []


def test_a_401_for_a_request_sent_before_the_token_was_given_does_not_ask_again(service_process, browser):
    process = service_process({"api": {"token": TOKEN, "protect_reads": True}}).start()
    process.wait_http()
    page = browser.new_page()
    held = []

    def hold_the_first_tokenless_log_read(route):
        if not held and "authorization" not in route.request.headers:
            held.append(route)  # answered later, after the token was given
        else:
            route.continue_()

    page.route("**/api/logs*", hold_the_first_tokenless_log_read)
    page.goto(process.url("/"))
    page.wait_for_selector("[data-testid=auth]:not([hidden])", timeout=10_000)
    assert held, "the page read its logs before the token was given"
    page.fill("[data-testid=token-input]", TOKEN)
    page.click("[data-testid=token-save]")
    page.wait_for_selector("[data-testid=auth]", state="hidden")
    with page.expect_response(lambda response: "/api/logs" in response.url and response.status == 401):
        held[0].continue_()  # the stale request: sent without the token, refused now
    page.wait_for_function("document.querySelectorAll('#logs li').length > 0", timeout=10_000)
    assert page.is_hidden("[data-testid=auth]")
