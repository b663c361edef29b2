"""The desktop uploader driven headless against the real server: connect, pick photos (by drag and drop),
upload, start, follow processing, download, and the projects list surviving a restart."""

from __future__ import annotations

import re
import threading
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from openscancloud.client import Client, UploadCancelled


def drop_path(window, path: Path) -> None:
    """A real drop event handed to the photos box, as when a folder is dragged from the file manager (Qt does
    not route synthetic drops through `sendEvent` without a drag in progress, so the handler is called)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    target = window.photos_box
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    target.dragEnterEvent(event)
    target.dropEvent(event)
    assert event.isAccepted()


def connect(qtbot, window, server, token) -> None:
    window.server_edit.setText(server.url)
    window.token_edit.setText(token)
    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.token_info is not None, timeout=20_000)


@pytest.mark.slow  # a real reconstruction; the CLI, web and firmware tests run one in `make test`
def test_pick_upload_process_download(qtbot, make_window, processing_server, photo_set, tmp_path, client_paths):
    images = photo_set("kermit")
    token = processing_server.token()
    window = make_window()
    connect(qtbot, window, processing_server, token)
    assert "Credit 50.00 GB" in window.token_label.text()
    assert "settings file" in window.message_label.text()  # no keyring here: remembered in the config file

    drop_path(window, images)
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    assert window.summary_label.text().startswith("11 photos")
    assert window.thumbs.count() == 11
    assert window.limits_label.text() == "Within your token's limits."
    window.project_edit.setText("kermit-desktop")

    seen_progress: list[int] = []
    window.overall_bar.valueChanged.connect(seen_progress.append)
    window.resize(640, 700)  # resizing during the upload changes nothing
    qtbot.mouseClick(window.upload_button, Qt.MouseButton.LeftButton)
    assert not window.upload_button.isEnabled() and window.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not window.uploading, timeout=60_000)
    assert window.overall_bar.value() == 100 and seen_progress and max(seen_progress) == 100
    assert window.current_project == "kermit-desktop", window.message_label.text()
    stages: list[str] = []
    qtbot.waitUntil(lambda: stages.append(window.stage_label.text()) or not window.waiting, timeout=600_000)
    assert window.current_info is not None and window.current_info.is_done, window.message_label.text()
    assert any(re.search(r": processing — \S.* \d+%", text) for text in stages), stages  # stage and %
    assert window.last_notification == "OpenScan Cloud: kermit-desktop is done."
    assert window.download_button.isEnabled()

    window.download_dir_fixed = True
    window.download_dir = str(tmp_path / "results")
    qtbot.mouseClick(window.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.last_download is not None, timeout=60_000)
    with zipfile.ZipFile(window.last_download) as zf:
        names = zf.namelist()
    assert any(n.endswith((".glb", ".obj")) for n in names), names
    assert window.open_button.isEnabled()

    # The list of this machine's projects survives a restart of the app (the token comes from the config file).
    window.close()
    again = make_window()
    assert again.server_edit.text() == processing_server.url and again.token_edit.text() == token
    rows = {again.projects_table.item(r, 0).text(): again.projects_table.item(r, 1).text()
            for r in range(again.projects_table.rowCount())}
    assert rows == {"kermit-desktop": "done"}


def test_errors_are_sentences_and_limits_block_upload(qtbot, make_window, upload_server, photo_set):
    window = make_window()
    window.server_edit.setText(upload_server.url)
    window.token_edit.setText("prv_not-a-real-token")
    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.token_label.text() == "Not connected.", timeout=20_000)
    message = window.message_label.text()
    assert "did not accept the token" in message and "Traceback" not in message

    connect(qtbot, window, upload_server, upload_server.token(limit_photos=5))
    window.set_source(photo_set("kermit"))
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    assert window.limits_label.text() == "This set has 11 photos but your token allows at most 5."
    assert not window.upload_button.isEnabled()

    window.set_source(Path("/nonexistent/photos"))
    qtbot.waitUntil(lambda: "does not exist" in window.message_label.text(), timeout=20_000)
    assert window.summary_label.text() == "No photos chosen yet."


def test_interrupted_upload_is_continued_from_the_window(qtbot, make_window, upload_server, photo_set, client_paths):
    images = photo_set("kermit")
    token = upload_server.token()
    cancel = threading.Event()

    def stop_in_part_three(p):
        if p.phase == "uploading" and p.part_index == 2:
            cancel.set()

    # An earlier session (the CLI, or the app before a crash) got two parts up, then stopped.
    with Client(upload_server.url, token, paths=client_paths, part_size=500_000, chunk_size=100_000) as sdk:
        with pytest.raises(UploadCancelled):
            sdk.upload(images, "kermit-resume", progress=stop_in_part_three, cancel=cancel)
        held = sdk.project_info("kermit-resume").parts
    assert held[0].complete and held[1].complete and not held[3].complete

    window = make_window()
    connect(qtbot, window, upload_server, token)
    window.set_source(images)
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    assert window.project_edit.text() == "kermit-resume"
    assert "unfinished upload" in window.message_label.text()
    qtbot.mouseClick(window.upload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Continued and finished" in window.message_label.text(), timeout=60_000)
    qtbot.waitUntil(lambda: window.current_info is not None, timeout=20_000)
    assert window.current_info.status == "queued"  # no worker on this server: it waits in the queue
    assert window.cancel_button.isEnabled()  # Cancel stops following (the project keeps its place)


def test_upload_rides_out_network_drops_and_can_be_cancelled(qtbot, make_window, upload_server, slow_link,
                                                             photo_set):
    images = photo_set("kermit")
    token = upload_server.token()
    link = slow_link(upload_server.port)
    window = make_window()
    connect(qtbot, window, upload_server, token)
    window.server_edit.setText(link.url)  # from now on everything goes through the flaky link

    window.set_source(images)
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    window.project_edit.setText("kermit-flaky")
    link.delay = 0.01
    link.cut_after(600_000)  # the network drops once in the middle of the upload
    retries: list[str] = []
    qtbot.mouseClick(window.upload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: retries.append(window.speed_label.text()) or not window.uploading, timeout=120_000)
    assert link.cuts == 1
    assert any("trying again" in text for text in retries), retries
    assert "Finished uploading kermit-flaky" in window.message_label.text(), window.message_label.text()
    window.cancel_upload()  # stop following the queued project
    qtbot.waitUntil(lambda: not window.waiting, timeout=20_000)

    # A second upload, cancelled half-way: a sentence, the progress kept, and Upload & start continues it.
    link.delay = 0.05
    window.set_source(images)
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    window.project_edit.setText("kermit-cancel")
    qtbot.mouseClick(window.upload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.overall_bar.value() >= 20 and "Overall" in window.overall_bar.format(),
                    timeout=60_000)
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.uploading, timeout=30_000)
    assert window.message_label.text() == "The upload was cancelled; upload again to continue where it stopped."
    link.delay = 0
    window.set_source(images)
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    assert window.project_edit.text() == "kermit-cancel"
    qtbot.mouseClick(window.upload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Continued and finished uploading kermit-cancel" in window.message_label.text(),
                    timeout=60_000)


def test_chosen_options_reach_the_server(qtbot, make_window, upload_server, photo_set, client_paths):
    import httpx

    token = upload_server.token()
    window = make_window()
    connect(qtbot, window, upload_server, token)
    window.set_source(photo_set("kermit"))
    qtbot.waitUntil(lambda: window.photos is not None, timeout=20_000)
    window.project_edit.setText("desktop-options")
    window.quality_combo.setCurrentIndex(window.quality_combo.findData("high"))
    window.masks_combo.setCurrentIndex(window.masks_combo.findData("off"))
    window.texture_combo.setCurrentIndex(window.texture_combo.findData(2048))
    window.faces_spin.setValue(50_000)
    window.format_boxes["ply"].setChecked(False)
    qtbot.mouseClick(window.upload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.uploading, timeout=60_000)
    listing = httpx.get(f"{upload_server.url}/api/v1/projects", headers={"Authorization": f"Bearer {token}"}).json()
    project = next(p for p in listing["projects"] if p["name"] == "desktop-options")
    assert project["options"] == {"quality": "high", "masks": "off", "texture_size": 2048, "target_faces": 50_000,
                                  "formats": ["glb", "obj", "stl", "usdz"]}
