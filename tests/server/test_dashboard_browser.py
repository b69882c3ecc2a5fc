"""The dashboard, end to end: a real `keel serve` in a subprocess, a real headless Chromium
driven by Playwright, a session that stops for an approval, and a person who clicks Approve.

Needs Debian's Chromium at /usr/bin/chromium (`apt-get install chromium`; `.ci/run` installs
it when it can); without it the test is skipped, saying so. Playwright's own browser
downloads are not used.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.cli.demo import DEMO_GOAL, create_demo_repo
from keel_server import KeelServer

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
POLICY = """\
rules:
  - action: ask
    tool: run_command
    reason: a person approves every command the agents run
"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"the dashboard's browser test needs Chromium at {CHROMIUM} "
    "(apt-get install chromium); Playwright's own browser downloads are not used",
)

sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")


@pytest.fixture
def server(start_server: Callable[..., KeelServer]) -> Iterator[KeelServer]:
    """`keel serve` with no options but its port and roots; its log is printed at the end."""
    server = start_server()
    yield server
    print(server.said()[-4000:])


@pytest.fixture
def page(tmp_path: Path) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--disable-dev-shm-usage"]
        )
        try:
            tab = browser.new_page(viewport={"width": 1440, "height": 900})
            tab.set_default_timeout(20_000)
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            yield tab
            assert not errors, f"the page raised: {errors}"
        finally:
            browser.close()


def test_a_person_watches_a_session_live_approves_its_command_and_sees_it_finish(
    server: KeelServer, page: sync_api.Page, tmp_path: Path
) -> None:
    expect = sync_api.expect
    with server.client() as api:
        assert api.put("/v1/policy", json={"yaml": POLICY}).status_code == 200

        # Sign in with the token; the sessions list is empty, then shows the new session.
        page.goto(f"{server.url}/ui/")
        page.fill("#token", server.admin_token)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Sessions")

        repo = create_demo_repo(server.workspace_root)
        config = {"workspace": str(repo), "scriptedLatencyMs": 400}
        created = api.post("/v1/sessions", json={"goal": DEMO_GOAL, "config": config})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        page.click(f"tr[data-session-id='{session_id}']")

        # The timeline fills from the stream; the tester's command waits for a person.
        events = page.locator("li.event")
        expect(events.first).to_be_attached()
        card = page.locator(".approval-card").first
        expect(card).to_contain_text("run_command")
        expect(card).to_contain_text("unittest discover")
        expect(card).to_contain_text("a person approves every command the agents run")
        expect(card.locator(".risk")).to_contain_text("risk")
        expect(page.locator(".task-line[data-status='blocked']")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "waiting-for-approval.png"), full_page=True)
        before = events.count()

        # One click: the task resumes, and the new events arrive live.
        card.locator("button.approve").click()
        expect(page.locator("li.event[data-type='approval.applied']").first).to_be_attached()
        page.wait_for_function(f"document.querySelectorAll('li.event').length > {before}")

        # The second test run asks again; answer whatever waits until the session is done.
        done = page.locator(".session-status[data-status='done']")
        deadline = time.monotonic() + 40
        while not done.count():
            assert time.monotonic() < deadline, "the session did not finish within 40 s"
            approve = page.locator(".approval-card button.approve:enabled")
            if approve.count():
                approve.first.click()
            page.wait_for_timeout(200)

        expect(page.locator(".stream-state")).to_have_text("ended")
        expect(page.locator(".task-line")).to_have_count(5)
        expect(page.locator(".task-line[data-status='done']")).to_have_count(5)
        expect(page.locator(".answered li")).to_have_count(2)
        expect(page.locator(".inbox")).to_contain_text("Nothing waits")
        expect(page.locator("li.event[data-type='session.completed']")).to_be_attached()
        expect(page.locator(".diff .add")).to_contain_text("return a + b")
        expect(page.locator(".diff .del")).to_contain_text("return a - b")

        # The same through the API the page uses.
        snapshots = api.get(f"/v1/sessions/{session_id}/snapshots").json()["snapshots"]
        assert snapshots[0]["label"] == "start"
        assert len(snapshots) >= 2
        latest = snapshots[-1]["number"]
        diff = api.get(f"/v1/sessions/{session_id}/diff", params={"a": 0, "b": latest})
        assert "+    return a + b" in diff.text
        missing = api.get(f"/v1/sessions/{session_id}/diff", params={"a": 99})
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

    expect(page.locator(".toast")).to_have_count(0, timeout=10_000)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    if os.environ.get("KEEL_UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "dashboard.png", DOCS_SCREENSHOT)
