"""The web app in a real browser against a real server and worker: upload a real photo set through the page,
watch progress move to done, see the model on the viewer's canvas, open a share link without a token, resume
an upload after a reload, run the admin page — and no request ever leaves the server's origin."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx
import pytest

# Screenshots go to docs/img only when asked (`OPENSCAN_UPDATE_SCREENSHOTS=1`), so that a test run leaves the
# working tree as it was; otherwise they are still taken (a page that cannot be captured fails) into a temporary
# folder.
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
IMG = DOCS_IMG if os.environ.get("OPENSCAN_UPDATE_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp(prefix="web-shots-"))

# Share of canvas pixels that differ from the viewer's background colour (#e9eef0), read back from WebGL.
MODEL_PIXELS = """async () => {
  const canvas = document.querySelector('[data-testid=viewer-canvas]');
  const img = new Image();
  img.src = canvas.toDataURL('image/png');
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let other = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - 0xe9) + Math.abs(d[i + 1] - 0xee) + Math.abs(d[i + 2] - 0xf0) > 30) other++;
  }
  return other / (d.length / 4);
}"""


def shot(page, name: str, full: bool = False) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / name), full_page=full)


def sign_in_public(page, url: str) -> None:
    page.goto(url + "/")
    page.get_by_role("button", name="Use the public token").click()
    page.get_by_role("heading", name="Scan something").wait_for()


def test_upload_watch_view_download_and_share(web_server, new_page, photo_set):
    images = sorted(photo_set("kermit").glob("*.jpg"))
    page, guard = new_page()
    sign_in_public(page, web_server.url)
    page.set_input_files("#files", [str(p) for p in images])
    page.get_by_text(f"{len(images)} photos").wait_for()
    assert page.locator(".thumbs img").count() == len(images)
    page.get_by_label("Quality").select_option("preview")
    page.fill("#project-name", "kermit-web")
    page.locator("h1").click()  # no focus ring in the picture
    shot(page, "web-upload.png")
    page.get_by_role("button", name="Upload and start").click()
    page.wait_for_url("**/#/p/*", timeout=120_000)

    seen: list[str] = []
    for _ in range(600):  # follow the live status until done (real engine, preview quality)
        state = page.locator(".badge").first.inner_text()
        stage = page.locator(".stage").inner_text()
        if stage and (not seen or seen[-1] != stage):
            seen.append(stage)
            if len(seen) == 4:
                page.wait_for_timeout(1500)
                shot(page, "web-progress.png")
        if state in ("done", "failed"):
            break
        page.wait_for_timeout(1000)
    assert state == "done", page.locator(".error").all_inner_texts()
    assert len(seen) >= 3, seen  # stage and percentage moved while we watched
    page.locator('[data-testid=viewer-canvas]').wait_for()
    page.wait_for_selector(".viewer-stage[data-loaded=true]", timeout=60_000)
    page.wait_for_timeout(1500)
    assert page.evaluate(MODEL_PIXELS) > 0.02  # the model covers part of the canvas

    # measuring: two picked points on the model give a distance
    page.locator(".viewer").scroll_into_view_if_needed()
    page.get_by_role("button", name="Measure").click()
    box = page.locator('[data-testid=viewer-canvas]').bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    readout = page.locator(".measure-readout")
    for dx, dy in ((-40, 0), (40, 0), (0, -60), (0, 60), (-20, 30), (20, -30)):
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(300)
        if "Distance:" in readout.inner_text():
            break
    assert "Distance:" in readout.inner_text() and "model units" in readout.inner_text()
    page.locator(".result").screenshot(path=str(IMG / "web-viewer.png"))

    links = {a.inner_text(): a.get_attribute("href") for a in page.locator(".downloads a").all()}
    assert {"GLB — web and most 3D apps", "STL — 3D printing (no colour)", "USDZ — AR on iPhone/iPad",
            "OBJ + MTL + texture (zip)"} <= set(links)
    usdz = httpx.get(links["USDZ — AR on iPhone/iPad"], timeout=60)
    assert usdz.status_code == 200 and usdz.content[:2] == b"PK"

    page.get_by_role("button", name="Create a share link").click()
    share_url = page.locator(".share-url").first.input_value()
    assert guard.outside == [] and guard.csp == []

    viewer, guard2 = new_page(390, 844)  # a fresh browser context on a phone-sized screen: no token stored
    viewer.goto(share_url)
    viewer.get_by_role("heading", name="kermit-web").wait_for()
    viewer.wait_for_selector(".viewer-stage[data-loaded=true]", timeout=60_000)
    viewer.wait_for_timeout(1000)
    assert viewer.evaluate(MODEL_PIXELS) > 0.02
    assert viewer.evaluate("document.scrollingElement.scrollWidth") <= 390  # fits the phone's width
    assert viewer.evaluate("localStorage.getItem('osc.token')") is None
    assert guard2.outside == [] and guard2.csp == []

    page.get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(500)
    viewer.reload()
    viewer.get_by_text("revoked").wait_for()


def test_reload_during_upload_resumes(web_server, new_page, photo_set, browser):
    images = [str(p) for p in sorted(photo_set("kermit").glob("*.jpg"))]
    token = web_server.token()
    page, guard = new_page()
    page.goto(web_server.url + "/")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Scan something").wait_for()

    sent: list[str] = []
    holding = {"on": True}

    def hold_after_two(route) -> None:  # the network "drops" after two chunks: later PUTs never answer
        sent.append(route.request.url)
        if len(sent) <= 2 or not holding["on"]:
            route.continue_()

    page.route("**/upload/**", hold_after_two)
    page.set_input_files("#files", images)
    page.get_by_role("button", name="Upload and start").click()
    page.locator(".progress-text", has_text="Uploading").wait_for()
    page.wait_for_timeout(1500)
    assert len(sent) == 3  # two parts arrived, the third hangs
    page.reload()  # the hanging request dies with the page
    holding["on"] = False
    headers = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{web_server.url}/api/v1/projects", headers=headers).json()["projects"]
    assert len(listed) == 1
    before = httpx.get(f"{web_server.url}/api/v1/projects/{listed[0]['id']}", headers=headers).json()
    assert sum(p["complete"] for p in before["parts"]) == 2
    page.get_by_text("was interrupted").wait_for()
    after: list[str] = []
    page.on("request", lambda r: after.append(r.url) if "/upload/" in r.url else None)
    page.set_input_files("#files", images)
    page.get_by_role("button", name="Upload and start").click()
    page.wait_for_url("**/#/p/*", timeout=120_000)
    projects = httpx.get(f"{web_server.url}/api/v1/projects", headers=headers).json()["projects"]
    assert len(projects) == 1 and projects[0]["status"] in ("queued", "processing")  # continued, not re-created
    total_parts = projects[0]["parts_total"]
    assert len(after) == total_parts - 2  # only the parts that had not arrived were sent again
    httpx.post(f"{web_server.url}/api/v1/projects/{projects[0]['id']}/cancel", headers=headers)
    assert guard.outside == []


def test_admin_page_tokens_queue_workers_ledger(web_server, new_page):
    admin = web_server.token("admin")
    page, guard = new_page(1280, 1100)
    page.goto(web_server.url + "/")
    page.fill("#token", admin)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("heading", name="Administration").wait_for()
    page.fill("input[name=forename]", "Grace")
    page.fill("input[name=surname]", "Hopper")
    page.fill("input[name=email]", "grace@example.org")
    page.fill("input[name=credit_gb]", "3")
    page.get_by_role("button", name="Create token").click()
    new_token = page.locator(".created-token code").inner_text()
    r = httpx.get(f"{web_server.url}/api/v1/token", headers={"Authorization": f"Bearer {new_token}"})
    assert r.status_code == 200 and r.json()["credit"] == pytest.approx(3.0)
    row = page.locator("#tokens tr", has_text="grace@example.org")
    row.get_by_role("button", name="Add GB").click()
    page.locator("#tokens").get_by_text("4.00 GB").wait_for()
    page.get_by_text("top-up by an administrator").first.wait_for()
    assert page.locator("#workers").get_by_text("online").count() >= 1
    page.wait_for_timeout(4500)  # let the confirmation toasts fade
    shot(page, "web-admin.png", full=True)
    assert guard.outside == [] and guard.csp == []


def test_admin_approves_a_token_request(web_server, new_page):
    admin = web_server.token("admin")
    headers = {"Authorization": f"Bearer {admin}"}
    r = httpx.get(f"{web_server.url}/requestToken", params={"mail": "lin@example.org", "forename": "Lin",
                                                          "lastname": "Chen"}, auth=("openscan", "free"))
    assert r.status_code == 200, r.text
    page, _ = new_page()
    page.goto(web_server.url + "/")
    page.fill("#token", admin)
    page.get_by_role("button", name="Sign in").click()
    page.goto(web_server.url + "/#/admin")
    row = page.locator("#requests tr", has_text="lin@example.org")
    row.get_by_role("button", name="Approve").click()
    row.get_by_text("approved").wait_for()
    listing = httpx.get(f"{web_server.url}/api/v1/admin/token-requests", headers=headers).json()["requests"]
    assert any(q["email"] == "lin@example.org" and q["status"] == "approved" for q in listing)


def test_api_docs_work_offline(web_server, new_page):
    page, guard = new_page()
    page.goto(web_server.url + "/docs")
    page.get_by_role("button", name="Authorize").first.wait_for()
    page.locator("#operations-legacy_protocol-create_project_createProject_get").click()
    page.get_by_text("filesize").first.wait_for()
    assert guard.outside == []


def test_phone_width_and_keyboard(web_server, new_page):
    page, guard = new_page(390, 844)
    # listen before any key is pressed: Playwright turns the browser's file-chooser interception on asynchronously
    # when the first listener is added, so a listener added just before the key could miss the chooser under load
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    sign_in_public(page, web_server.url)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    # keyboard only: the skip link, then the navigation, reach the drop zone; Enter opens the file chooser
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('drop')"):
            break
    assert page.evaluate("document.activeElement.classList.contains('drop')")
    page.keyboard.press("Enter")
    for _ in range(100):
        if choosers:
            break
        page.wait_for_timeout(100)
    assert len(choosers) == 1 and choosers[0].is_multiple()
    assert guard.outside == [] and guard.csp == []
