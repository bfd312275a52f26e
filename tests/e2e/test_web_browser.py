"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against
``run DROP OUT --web`` as a user starts it (a subprocess). What the page shows is read
from the page itself, after its script has run: the live stream's updates, the upload
form, the Retry button, the login form, and names shown as the characters they hold.

Screenshots of each page go to the test's tmp dir (``screens/``), to look at when a test
fails or the pages change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli, Proc, open_cli, wait_until
from playwright.sync_api import Browser, Page, expect, sync_playwright
from test_web_cli import free_port, served

from conftest import FFMPEG, Clip

#: Without the background-networking flags, Chromium's own connections (updates, sync)
#: are refused by a closed network and slow every page down.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Playwright's own waits (expect, wait_for_*), in ms: generous for a busy 2-core machine.
WAIT_MS = 90_000
#: Markup of three kinds (rich, HTML, an entity); a file name cannot hold "/", so no </b>.
HOSTILE = "[bold]<b>x &amp; <i>y.mp4"
expect.set_options(timeout=WAIT_MS)

#: Collects, from the live page, each in-flight row's stage and progress value as the
#: script redraws them, and marks the page so that a reload would show (the mark gone).
WATCH_IN_FLIGHT = """() => {
  window.__sameDocument = true;
  window.__seen = [];
  const body = document.querySelector("#in-flight tbody");
  new MutationObserver(() => {
    for (const row of body.querySelectorAll("tr[data-id]")) {
      const bar = row.querySelector("progress");
      window.__seen.push([row.cells[1].textContent, bar ? bar.value : null]);
    }
  }).observe(body, { childList: true, subtree: true });
}"""


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    yield from open_cli(request, tmp_path, "local")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_errors() -> list[str]:
    """What went wrong in the page (script errors, CSP violations, 4xx/5xx answers): none
    may, unless a test asked for it (then it clears them)."""
    return []


@pytest.fixture
def page(browser: Browser, page_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    context.set_default_timeout(WAIT_MS)
    p = context.new_page()
    errors = page_errors
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield p
    context.close()
    assert not errors, f"the page's script failed: {errors}"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s of video: transcoding it to 720p takes seconds, long enough for the progress
    snapshots (one a second) to be seen changing."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    subprocess.run(
        [
            *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"),
            *("-shortest", str(path)),
        ],
        check=True,
        capture_output=True,
    )
    return path


def start_run(cli: Cli, tmp_path: Path, *extra: str, bind: str = "127.0.0.1") -> tuple[Proc, str]:
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir(exist_ok=True)
    run = cli.start("run", "run", drop, out, "--web", f"{bind}:{free_port()}", *extra)
    return run, served(run)


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "screens"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def live(page: Page) -> None:
    """Once the page's live stream has sent its first update."""
    expect(page.locator("body")).to_have_attribute("data-live", "1")


def stage_count(page: Page, stage: str) -> str:
    """The Overview's count of ``stage`` (as the live script last drew it), or ""."""
    item = page.locator("#by-stage li", has=page.get_by_role("link", name=stage, exact=True))
    return item.locator("b").inner_text() if item.count() else ""


def test_a_dropped_file_moves_live_in_the_page_and_lands_in_history(
    cli: Cli, tmp_path: Path, page: Page, long_clip: Path
) -> None:
    run, base = start_run(cli, tmp_path, "--settle", "0.3")
    page.goto(base)
    expect(page.locator("#by-stage")).to_contain_text("no files yet")
    expect(page.locator("#in-flight")).to_contain_text("nothing in flight")
    live(page)
    screenshot(page, tmp_path, "overview-empty")
    page.evaluate(WATCH_IN_FLIGHT)

    shutil.copyfile(long_clip, tmp_path / "drop" / "holiday.mp4")

    row = page.locator("#in-flight tr", has_text="holiday.mp4")
    expect(row).to_be_visible()
    expect(row.locator("progress")).to_be_visible()
    screenshot(page, tmp_path, "overview-in-flight")
    wait_until(lambda: stage_count(page, "done") == "1", "the page to count it done", procs=(run,))
    assert page.evaluate("window.__sameDocument") is True  # no reload: the script drew it all
    seen: list[list[object]] = page.evaluate("window.__seen")
    percents = {value for stage, value in seen if stage == "transcoding" and value is not None}
    assert len(percents) >= 2, seen  # the bar moved
    expect(page.locator("#in-flight")).to_contain_text("nothing in flight")
    latest = page.locator("#latest tr", has_text="holiday.mp4")
    expect(latest).to_contain_text("done")
    expect(page.locator('[data-total="bytes_in"]')).to_contain_text("MB")
    screenshot(page, tmp_path, "overview-done")

    page.get_by_role("link", name="History", exact=True).click()
    done = page.locator("table.files tr", has_text="holiday.mp4")
    expect(done).to_contain_text("done")
    cells = done.locator("td")
    expect(cells.nth(2)).to_contain_text("MB")  # in
    expect(cells.nth(3)).to_contain_text("B")  # out
    assert cells.nth(3).inner_text().strip(), done.inner_text()
    screenshot(page, tmp_path, "history")

    done.get_by_role("link", name="holiday.mp4").click()
    expect(page.locator("h1")).to_have_text("holiday.mp4")
    expect(page.locator("table.outputs")).to_contain_text("web-720p")
    expect(page.locator("table.outputs")).to_contain_text("640x360")
    screenshot(page, tmp_path, "file")
    page.get_by_role("link", name="Presets", exact=True).click()
    expect(page.locator("#preset-web-720p pre.command")).to_contain_text("libx264")
    screenshot(page, tmp_path, "presets")
    assert run.stop() == 130, run  # Ctrl+C


def test_a_bad_file_shows_its_reason_and_retry_in_the_page_delivers_it_once_fixed(
    cli: Cli, tmp_path: Path, page: Page, clips: dict[str, Clip]
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    bad = drop / "bad.mp4"
    bad.write_bytes(b"")
    hour_ago = time.time() - 3600
    os.utime(bad, (hour_ago, hour_ago))  # an old file at start-up is taken at once
    # A long settle: the fixed file, written anew, is not taken again by the watcher
    # during the test; Retry is what sends it through.
    run, base = start_run(cli, tmp_path, "--settle", "600")
    page.goto(base)
    failed = page.locator("#latest tr", has_text="bad.mp4")
    expect(failed).to_contain_text("failed")
    expect(failed.locator(".reason")).to_contain_text("empty")
    failed.get_by_role("link", name="bad.mp4").click()
    expect(page.locator("dd.reason")).to_contain_text("empty")
    expect(page.locator(".stage-failed").first).to_be_visible()
    screenshot(page, tmp_path, "file-failed")

    shutil.copyfile(clips["h264.mp4"].path, bad)  # fixed
    page.get_by_role("button", name="Retry").click()

    # The file's page follows it live, then links to its whole story once it is done.
    expect(page.locator("#live-stage.stage-done")).to_be_visible()
    page.get_by_role("link", name="(see its whole story)").click()
    expect(page.locator("table.outputs")).to_contain_text("bad.mp4")
    expect(page.locator("table.outputs tr.output-done")).to_have_count(1)
    assert (tmp_path / "out" / "bad.mp4").is_file()
    screenshot(page, tmp_path, "file-retried")
    assert run.stop() == 130, run  # Ctrl+C


def test_a_file_uploaded_through_the_page_is_transcoded(
    cli: Cli, tmp_path: Path, page: Page, clips: dict[str, Clip]
) -> None:
    run, base = start_run(cli, tmp_path, "--settle", "0.3")
    page.goto(base)
    live(page)
    source = tmp_path / "from the browser.mkv"
    shutil.copyfile(clips["vp9.mkv"].path, source)
    page.locator('#upload input[type="file"]').set_input_files(str(source))
    page.get_by_role("button", name="Upload into the drop folder").click()
    expect(page.locator("#upload-result")).to_have_text(
        "from the browser.mkv is in the drop folder"
    )
    latest = page.locator("#latest tr", has_text="from the browser.mkv")
    expect(latest).to_contain_text("done")
    screenshot(page, tmp_path, "overview-uploaded")
    assert (tmp_path / "out" / "from the browser.mp4").is_file()
    assert run.stop() == 130, run  # Ctrl+C


def test_names_appear_as_the_characters_they_hold(
    cli: Cli, tmp_path: Path, page: Page, long_clip: Path
) -> None:
    run, base = start_run(cli, tmp_path, "--settle", "0.3")
    page.goto(base)
    live(page)
    shutil.copyfile(long_clip, tmp_path / "drop" / HOSTILE)

    # Drawn by the script (in flight), then by the server (History, the file's page).
    expect(page.locator("#in-flight td a")).to_have_text(HOSTILE)
    expect(page.locator("#latest td a")).to_have_text(HOSTILE)
    assert page.locator("main b", has_text="x").count() == 0  # no <b> from the name
    assert page.locator("main i").count() == 0
    page.get_by_role("link", name="History", exact=True).click()
    expect(page.locator("table.files td a")).to_have_text(HOSTILE)
    page.get_by_role("link", name=HOSTILE).click()
    expect(page.locator("h1")).to_have_text(HOSTILE)
    assert page.locator("h1 b, h1 i").count() == 0
    screenshot(page, tmp_path, "file-hostile-name")
    assert run.stop() == 130, run  # Ctrl+C


def test_beyond_loopback_the_page_asks_for_the_token(
    cli: Cli, tmp_path: Path, page: Page, page_errors: list[str]
) -> None:
    run, base = start_run(cli, tmp_path, "--web-token", "the-right-token", bind="0.0.0.0")
    local = base.replace("0.0.0.0", "127.0.0.1")
    page.goto(local + "history")
    expect(page.locator("h1")).to_have_text("Log in")
    screenshot(page, tmp_path, "login")
    page.get_by_label("token").fill("not-it")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("p.reason")).to_contain_text("not the right one")
    assert [e for e in page_errors if e.startswith("401 ")], page_errors  # said as a 401
    page_errors.clear()
    page.get_by_label("token").fill("the-right-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("History")  # where it was going
    page.get_by_role("link", name="Overview", exact=True).click()
    live(page)  # the stream too, with the cookie
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("h1")).to_have_text("Log in")
    page.goto(local)
    expect(page.locator("h1")).to_have_text("Log in")
    assert run.stop() == 130, run  # Ctrl+C


def test_the_queue_page_cancels_a_waiting_file_and_the_workers_panel_shows_a_worker(
    cli: Cli, tmp_path: Path, page: Page, clips: dict[str, Clip]
) -> None:
    # No worker in run's process: the files wait on the job queue until one starts.
    run, base = start_run(cli, tmp_path, "--settle", "0.3", "--workers", "0")
    page.goto(base)
    live(page)
    expect(page.locator("#workers")).to_contain_text("no workers alive")
    drop = tmp_path / "drop"
    shutil.copyfile(clips["h264.mp4"].path, drop / "first.mp4")
    shutil.copyfile(clips["vp9.mkv"].path, drop / "second.mkv")

    def both_waiting() -> bool:
        page.goto(base + "queue")
        return page.locator("#queue tr[data-id]").count() == 2

    wait_until(both_waiting, "both files on the Queue page", procs=(run,))
    screenshot(page, tmp_path, "queue")
    row = page.locator("#queue tr", has_text="first.mp4")
    expect(row).to_contain_text("waiting for a worker")
    row.get_by_role("button", name="Cancel").click()
    expect(page.locator("h1")).to_have_text("Queue")
    expect(page.locator("#queue tr[data-id]")).to_have_count(1)
    expect(page.locator("#queue")).to_contain_text("second.mkv")
    page.get_by_role("link", name="History", exact=True).click()
    cancelled = page.locator("table.files tr", has_text="first.mp4")
    expect(cancelled).to_contain_text("failed: cancelled")

    page.get_by_role("link", name="Overview", exact=True).click()
    live(page)
    worker = cli.start("worker", "worker")
    # Drawn live by the script (no reload): the worker's row, then the file done.
    expect(page.locator("#workers tr[data-worker]")).to_contain_text(str(worker.popen.pid))
    wait_until(lambda: stage_count(page, "done") == "1", "second.mkv done", procs=(run, worker))
    screenshot(page, tmp_path, "overview-workers")
    assert not (tmp_path / "out" / "first.mp4").exists()
    assert (tmp_path / "out" / "second.mp4").is_file()
    assert worker.stop() in (0, 130), worker
    assert run.stop() == 130, run  # Ctrl+C
