"""The jobs page (``/jobs``) in Debian's Chromium against a real web server and worker (Redis + PostgreSQL).

A user picks a workflow, uploads a CSV, creates a batch job, watches its progress bar reach the end, opens the
per-item results table from the jobs table, downloads the results, then turns a definition into a schedule,
previews its next fires and pauses it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.editor_browser import ARTIFACTS, launch
from tests.support.editor_browser import dataframe_rows as rows
from tests.support.specs import greet
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
NAMES = [f"guest{i:02d}" for i in range(12)]
WAIT = 60_000  # ms; other work shares these two cores
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("jobs-page")
    unused = root / "no-model"  # greet loads no model, so the tiny chat models are not built
    gen = process_stack("redis", root, unused, unused)
    stack = next(gen)
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", name="worker-jobs-page")
    stack.create("greet", greet())
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


@pytest.fixture()
def page(jobs_stack: Stack):
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(WAIT)
            page.goto(f"{jobs_stack.base_url}/jobs/", wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def choose_workflow(page, name: str) -> None:
    box = page.get_by_role("combobox", name="Workflow")
    box.click()
    page.get_by_role("option", name=name, exact=True).click()
    assert box.input_value() == name


def wait_rows(page, elem_id: str, count: int) -> list[list[str]]:
    expect(page.locator(f"#{elem_id} [role=row][data-index]")).to_have_count(count, timeout=WAIT)
    return rows(page, elem_id)


def download(page, link: str) -> str:
    with page.expect_download(timeout=WAIT) as info:
        page.get_by_role("link", name=link, exact=True).click()
    return Path(info.value.path()).read_text(encoding="utf-8")


def test_job_from_uploaded_csv_shows_progress_items_and_downloads(jobs_stack: Stack, page, tmp_path: Path):
    source = tmp_path / "guests.csv"
    source.write_text("name\n" + "\n".join(NAMES) + "\n")

    choose_workflow(page, "greet")
    assert page.get_by_label("upload CSV/JSONL").is_checked()
    upload = page.locator(".block").filter(has=page.get_by_test_id("block-label").filter(has_text="CSV / JSONL"))
    upload.locator("input[type=file]").set_input_files(str(source))
    upload.get_by_label("guests.csv").wait_for()  # uploaded: the component lists the file
    page.get_by_label("Job name (optional)").fill("greet guests")
    page.get_by_role("button", name="Create job").click()

    status = page.locator("#job-status")
    status.get_by_text("created with 12 items").wait_for()
    job_id = re.search(r"Job ([0-9a-f]{32}) created", status.inner_text()).group(1)
    bar = page.locator("#job-progress-box")
    bar.get_by_text("12 done · 0 failed").wait_for()
    # the items' count and the job's own state are written one after the other: wait for the state too
    expect(page.locator("#job-progress")).to_have_attribute("data-state", "succeeded", timeout=WAIT)
    assert re.search(r"succeeded · 12 done · 0 failed · 0 running · 12 total", bar.inner_text())

    # A fresh visit: open the job from the jobs table, as a user coming back later would.
    page.reload(wait_until="domcontentloaded")
    job_row = page.locator("#jobs-table [role=row][data-index]").filter(has_text="greet guests")
    job_row.get_by_role("gridcell").filter(has_text="greet guests").click()
    expect(page.get_by_label("Job id", exact=True)).to_have_value(job_id, timeout=WAIT)
    [listed] = [r for r in wait_rows(page, "jobs-table", 1) if r[0] == job_id]
    assert listed[1:7] == ["greet guests", "greet", "succeeded", "12", "0", "12"]
    items = wait_rows(page, "job-items", 12)
    assert [r[:2] for r in items] == [[str(i), "succeeded"] for i in range(12)]
    assert [json.loads(r[2]) for r in items] == [{"name": n} for n in NAMES]
    assert [json.loads(r[3]) for r in items] == [{"greeting": f"Hello {n}"} for n in NAMES]
    assert {r[4] for r in items} == {""}  # no errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jobs-page.png"), full_page=True)

    table = list(csv.DictReader(io.StringIO(download(page, "CSV"))))
    assert [(r["index"], r["state"], r["name"], r["greeting"]) for r in table] == [
        (str(i), "succeeded", n, f"Hello {n}") for i, n in enumerate(NAMES)]
    lines = [json.loads(line) for line in download(page, "JSONL").splitlines()]
    assert [(x["inputs"], x["outputs"], x["state"]) for x in lines] == [
        ({"name": n}, {"greeting": f"Hello {n}"}, "succeeded") for n in NAMES]


def test_schedule_from_a_workflow_previews_fires_and_pauses(jobs_stack: Stack, page):
    choose_workflow(page, "greet")
    page.get_by_label("single input", exact=True).check()
    page.get_by_label("Single input (JSON)").fill('{"name": "night owl"}')
    page.get_by_label("Schedule name").fill("nightly greet")
    page.get_by_label("Cron").fill("0 3 * * *")
    page.get_by_label("Timezone").fill("Europe/Berlin")

    page.get_by_role("button", name="Preview").click()
    status = page.locator("#schedule-status")
    status.get_by_text("Next fires:").wait_for()
    fires = re.findall(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) (CET|CEST)", status.inner_text())
    assert len(fires) == 5 and {time for _, time, _ in fires} == {"03:00:00"}, status.inner_text()
    days = [datetime.fromisoformat(day) for day, _, _ in fires]
    assert [(b - a).days for a, b in zip(days, days[1:])] == [1, 1, 1, 1]

    page.get_by_role("button", name="Create schedule").click()
    status.get_by_text("Schedule 'nightly greet' created").wait_for()
    first = datetime.fromisoformat(f"{fires[0][0]} 03:00:00").replace(tzinfo=BERLIN).astimezone(ZoneInfo("UTC"))
    assert wait_rows(page, "schedules-table", 1) == [
        ["nightly greet", "greet", "0 3 * * *", "Europe/Berlin", "active", first.strftime("%Y-%m-%d %H:%M:%S UTC")]]

    # Pick it in the table (fills the name), then pause it.
    page.get_by_label("Schedule name").fill("")
    page.locator("#schedules-table [role=gridcell]").filter(has_text="nightly greet").click()
    expect(page.get_by_label("Schedule name")).to_have_value("nightly greet", timeout=WAIT)
    page.get_by_role("button", name="Pause").click()
    status.get_by_text("'nightly greet' paused").wait_for()
    page.locator("#schedules-table [role=gridcell]").filter(has_text="paused").first.wait_for()
    assert rows(page, "schedules-table")[0][4:] == ["paused", "— (paused)"]   # no stale next fire while paused
    page.screenshot(path=str(ARTIFACTS / "jobs-page-schedules.png"), full_page=True)
