"""The uploader window: server and token → photos → Upload & start → processing → Download.

All work runs through `TaskRunner` (off the GUI thread) and the SDK (`openscancloud.client`), so the window shows
exactly what the CLI does: the same resumable upload, the same limit checks, the same error sentences.
"""

from __future__ import annotations

import threading
import time
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStyle,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from openscancloud.client import Client, RetryPolicy
from openscancloud.client.archive import PhotoSet, scan_source
from openscancloud.client.client import check_limits, default_project_name
from openscancloud.client.config import ClientPaths
from openscancloud.client.errors import ClientError
from openscancloud.client.models import ProcessingOptions, ProjectInfo, TokenInfo, UploadProgress
from openscancloud.client.state import StateStore
from openscancloud.desktop import settings as desktop_settings
from openscancloud.desktop.tasks import TaskRunner

THUMBNAILS = 24
THUMB_HEIGHT = 72
#: The desktop app is patient: a dropped Wi-Fi gets minutes to come back before the upload pauses.
DESKTOP_RETRY = RetryPolicy(attempts=12, base_delay=1.0, max_delay=60.0)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def load_thumbnails(photos: PhotoSet, limit: int = THUMBNAILS, height: int = THUMB_HEIGHT) -> list[tuple[str, QImage]]:
    """Small previews of the first photos (QImage is safe to make off the GUI thread, QPixmap is not)."""
    out: list[tuple[str, QImage]] = []
    zf = zipfile.ZipFile(photos.source) if photos.is_zip else None
    try:
        for entry in photos.photos[:limit]:
            if zf is not None:
                image = QImage.fromData(zf.read(entry.arcname))
                if not image.isNull():
                    image = image.scaledToHeight(height, Qt.TransformationMode.SmoothTransformation)
            else:
                reader = QImageReader(str(entry.path))
                reader.setAutoTransform(True)
                size = reader.size()
                if size.isValid() and size.height() > 0:
                    reader.setScaledSize(QSize(max(1, size.width() * height // size.height()), height))
                image = reader.read()
            if not image.isNull():
                out.append((entry.arcname, image))
    finally:
        if zf is not None:
            zf.close()
    return out


class SpeedMeter:
    """Bytes per second over the last few seconds, for the speed/time-left label."""

    def __init__(self, window: float = 4.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> float | None:
        now = time.monotonic()
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # the server's offset went back after a dropped connection
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 > 0.2 else None


class DropArea(QGroupBox):
    """The photos box: accepts a dropped folder or zip."""

    def __init__(self, title: str, window: MainWindow) -> None:
        super().__init__(title)
        self._window = window
        self.setAcceptDrops(True)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt name
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self._window.set_source(Path(urls[0].toLocalFile()))


class MainWindow(QMainWindow):
    """One window for the whole journey. Public methods are what the buttons call (and what tests drive)."""

    def __init__(self, paths: ClientPaths | None = None, *, poll_seconds: float = 5.0,
                 retry: RetryPolicy = DESKTOP_RETRY) -> None:
        super().__init__()
        self.paths = paths or ClientPaths.default()
        self.poll_seconds = poll_seconds
        self.retry = retry
        self.tasks = TaskRunner(self)
        self.store = StateStore(self.paths.state_dir)
        self.token_info: TokenInfo | None = None
        self.photos: PhotoSet | None = None
        self.current_project: str | None = None
        self.current_info: ProjectInfo | None = None
        self.cancel_event: threading.Event | None = None
        self.last_download: Path | None = None
        self.last_notification: str | None = None
        self.uploading = False
        self.waiting = False
        self._limits_ok = True
        self._speed = SpeedMeter()
        self._last_progress_paint = 0.0
        self.setWindowTitle("OpenScan Cloud Uploader")
        self.setAcceptDrops(True)
        self._build()
        saved = desktop_settings.load(self.paths)
        self.server_edit.setText(saved.server)
        self.token_edit.setText(saved.token)
        self.download_dir = saved.download_dir or str(Path.home() / "OpenScan Cloud")
        self.refresh_projects()
        self._update_buttons()
        if saved.server and saved.token:
            self.connect_server()

    # -- layout -----------------------------------------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)

        server_box = QGroupBox("Server")
        form = QFormLayout(server_box)
        self.server_edit = QLineEdit()
        self.server_edit.setPlaceholderText("http://127.0.0.1:8000")
        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("your token")
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_server)
        self.token_edit.returnPressed.connect(self.connect_server)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(self.connect_button)
        self.token_label = QLabel("Enter the server and your token, then Connect.")
        form.addRow("Server", self.server_edit)
        form.addRow("Token", token_row)
        form.addRow("", self.token_label)
        outer.addWidget(server_box)

        self.photos_box = DropArea("Photos — choose or drop a folder or zip", self)
        photos_layout = QVBoxLayout(self.photos_box)
        row = QHBoxLayout()
        self.folder_button = QPushButton("Choose folder…")
        self.folder_button.clicked.connect(self.choose_folder)
        self.zip_button = QPushButton("Choose zip…")
        self.zip_button.clicked.connect(self.choose_zip)
        self.summary_label = QLabel("No photos chosen yet.")
        self.summary_label.setWordWrap(True)
        row.addWidget(self.folder_button)
        row.addWidget(self.zip_button)
        row.addWidget(self.summary_label, 1)
        photos_layout.addLayout(row)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setFlow(QListWidget.Flow.LeftToRight)
        self.thumbs.setWrapping(False)
        self.thumbs.setIconSize(QSize(THUMB_HEIGHT * 3 // 2, THUMB_HEIGHT))
        self.thumbs.setFixedHeight(THUMB_HEIGHT + 28)
        self.thumbs.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.thumbs.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.thumbs.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        photos_layout.addWidget(self.thumbs)
        self.limits_label = QLabel("")
        self.limits_label.setWordWrap(True)
        photos_layout.addWidget(self.limits_label)
        name_row = QFormLayout()
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("project name (letters, digits, . _ -)")
        name_row.addRow("Project", self.project_edit)
        self.quality_combo = QComboBox()
        for value, text in ((None, "The server's default"), ("preview", "Preview — fastest"), ("standard", "Standard"),
                            ("high", "High — slowest")):
            self.quality_combo.addItem(text, value)
        self.masks_combo = QComboBox()
        for value, text in (("auto", "Automatic (rig background)"), ("off", "Off — every pixel"),
                            ("user", "My own (NAME_mask.png beside each photo)")):
            self.masks_combo.addItem(text, value)
        self.texture_combo = QComboBox()
        for value in (0, 1024, 2048, 4096, 8192):
            self.texture_combo.addItem("Automatic" if not value else f"{value} px", value)
        self.faces_spin = QSpinBox()
        self.faces_spin.setRange(0, 5_000_000)
        self.faces_spin.setSingleStep(10_000)
        self.faces_spin.setSpecialValueText("Automatic")
        formats_row = QHBoxLayout()
        self.format_boxes: dict[str, QCheckBox] = {}
        for fmt in ("glb", "obj", "ply", "stl", "usdz"):
            box = QCheckBox(fmt.upper())
            box.setChecked(True)
            self.format_boxes[fmt] = box
            formats_row.addWidget(box)
        formats_row.addStretch(1)
        name_row.addRow("Quality", self.quality_combo)
        name_row.addRow("Masks", self.masks_combo)
        name_row.addRow("Texture", self.texture_combo)
        name_row.addRow("Triangles", self.faces_spin)
        name_row.addRow("Formats", formats_row)
        photos_layout.addLayout(name_row)
        outer.addWidget(self.photos_box)

        upload_box = QGroupBox("Upload")
        up = QVBoxLayout(upload_box)
        buttons = QHBoxLayout()
        self.upload_button = QPushButton("Upload && start")
        self.upload_button.clicked.connect(self.upload_and_start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_upload)
        buttons.addWidget(self.upload_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        up.addLayout(buttons)
        self.overall_bar = QProgressBar()
        self.overall_bar.setFormat("Overall %p%")
        self.part_bar = QProgressBar()
        self.part_bar.setFormat("Part %p%")
        self.speed_label = QLabel("")
        up.addWidget(self.overall_bar)
        up.addWidget(self.part_bar)
        up.addWidget(self.speed_label)
        outer.addWidget(upload_box)

        proc_box = QGroupBox("Processing")
        proc = QVBoxLayout(proc_box)
        self.stage_label = QLabel("Nothing is processing.")
        self.stage_bar = QProgressBar()
        self.stage_bar.setFormat("%p%")
        prow = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(lambda: self.download_result())
        self.open_button = QPushButton("Open folder")
        self.open_button.clicked.connect(self.open_folder)
        prow.addWidget(self.download_button)
        prow.addWidget(self.open_button)
        prow.addStretch(1)
        proc.addWidget(self.stage_label)
        proc.addWidget(self.stage_bar)
        proc.addLayout(prow)
        outer.addWidget(proc_box)

        list_box = QGroupBox("Projects on this machine")
        lst = QVBoxLayout(list_box)
        self.projects_table = QTableWidget(0, 5)
        self.projects_table.setHorizontalHeaderLabels(["Project", "Status", "Progress", "Photos", "Size"])
        self.projects_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.projects_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.projects_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.projects_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.projects_table.verticalHeader().setVisible(False)
        self.projects_table.itemSelectionChanged.connect(self._project_selected)
        self.projects_table.setMinimumHeight(110)
        refresh_row = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda: self.refresh_remote())
        self.follow_button = QPushButton("Follow selected")
        self.follow_button.clicked.connect(self.follow_selected)
        refresh_row.addWidget(self.refresh_button)
        refresh_row.addWidget(self.follow_button)
        refresh_row.addStretch(1)
        lst.addWidget(self.projects_table)
        lst.addLayout(refresh_row)
        outer.addWidget(list_box, 1)

        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.message_label)
        self.setCentralWidget(central)
        self.resize(760, 860)

        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_ArrowUp), self)
            self.tray.show()

    # -- messages ---------------------------------------------------------------------------------------------

    def show_error(self, sentence: str) -> None:
        self.message_label.setStyleSheet("color: #b00020;")
        self.message_label.setText(sentence)

    def show_info(self, sentence: str) -> None:
        self.message_label.setStyleSheet("")
        self.message_label.setText(sentence)

    def notify(self, title: str, text: str) -> None:
        """A system notification when the desktop has one, else the window asks for attention."""
        self.last_notification = f"{title}: {text}"
        if self.tray is not None and self.tray.supportsMessages():
            self.tray.showMessage(title, text)
        else:
            QApplication.alert(self)

    def _update_buttons(self) -> None:
        busy = self.uploading
        self.upload_button.setEnabled(not busy and self.photos is not None and self._limits_ok)
        self.cancel_button.setEnabled(busy or self.waiting)
        self.folder_button.setEnabled(not busy)
        self.zip_button.setEnabled(not busy)
        ready = self.current_info is not None and self.current_info.is_done and bool(self.current_info.dlink)
        self.download_button.setEnabled(ready and not busy)
        self.open_button.setEnabled(self.last_download is not None)
        self.follow_button.setEnabled(not busy and not self.waiting)

    # -- server and token -------------------------------------------------------------------------------------

    def make_client(self) -> Client:
        return Client(self.server_edit.text().strip(), self.token_edit.text().strip(), paths=self.paths,
                      retry=self.retry)

    @Slot()
    def connect_server(self) -> None:
        server, token = self.server_edit.text().strip(), self.token_edit.text().strip()
        if not server or not token:
            self.show_error("Enter both the server address and your token.")
            return
        self.token_label.setText("Checking the token…")

        def work(_report):
            with self.make_client() as client:
                return client.token_info()

        self.tasks.start(work, done=self._token_checked, failed=self._token_failed)

    def _token_checked(self, info: TokenInfo) -> None:
        self.token_info = info
        self.token_label.setText(
            f"Credit {info.credit_gb:.2f} GB · uploads up to {human_bytes(info.limit_filesize)} "
            f"and {info.limit_photos} photos"
        )
        saved = desktop_settings.save(self.paths, desktop_settings.DesktopSettings(
            self.server_edit.text().strip(), self.token_edit.text().strip(), self.download_dir))
        where = "the system keyring" if saved.token_in_keyring else "your settings file"
        self.show_info(f"Connected. The token is remembered in {where}.")
        self._check_limits()
        self.refresh_projects()
        if not (self.uploading or self.waiting):  # pick up a project that was processing when the app closed
            active = [r for r in self._records() if r.status in ("started", "queued", "processing")]
            if active:
                self.follow(active[0].project)

    def _token_failed(self, sentence: str) -> None:
        self.token_info = None
        self.token_label.setText("Not connected.")
        self._check_limits()
        self.show_error(sentence)

    # -- photos -----------------------------------------------------------------------------------------------

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the folder with your photos")
        if folder:
            self.set_source(Path(folder))

    @Slot()
    def choose_zip(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a zip of photos", "", "Zip files (*.zip)")
        if path:
            self.set_source(Path(path))

    def set_source(self, path: Path) -> None:
        """Scan a folder or zip in the background, then show its summary and thumbnails."""
        if self.uploading:
            return
        self.summary_label.setText(f"Reading {path.name}…")
        self.thumbs.clear()
        self.photos = None
        self._update_buttons()

        def work(_report):
            photos = scan_source(path)
            return photos, load_thumbnails(photos)

        self.tasks.start(work, done=self._source_scanned, failed=self._source_failed)

    def _source_scanned(self, result: tuple[PhotoSet, list[tuple[str, QImage]]]) -> None:
        photos, thumbs = result
        self.photos = photos
        kind = "zip" if photos.is_zip else "folder"
        skipped = f" ({len(photos.skipped)} other files ignored)" if photos.skipped else ""
        self.summary_label.setText(
            f"{photos.photo_count} photos, {human_bytes(photos.total_bytes)} — {kind} {photos.source.name}{skipped}"
        )
        for name, image in thumbs:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(image)), "")
            item.setToolTip(name)
            self.thumbs.addItem(item)
        unfinished = None
        if self.server_edit.text().strip() and self.token_edit.text().strip():
            unfinished = self.store.unfinished_for_source(
                self.server_edit.text().strip(), self.token_edit.text().strip(), photos.source)
        if unfinished is not None:
            self.project_edit.setText(unfinished.project)
            self.show_info(f"An unfinished upload of these photos exists ({unfinished.project}); "
                           "Upload & start continues it.")
        else:
            self.project_edit.setText(default_project_name(photos.source))
            self.show_info("")
        self._check_limits()
        self._update_buttons()

    def _source_failed(self, sentence: str) -> None:
        self.summary_label.setText("No photos chosen yet.")
        self.show_error(sentence)
        self._update_buttons()

    def _check_limits(self) -> bool:
        """Compare the chosen photos with the token's limits; a clear sentence and no upload when over."""
        self._limits_ok = True
        if self.photos is None:
            return False
        if self.token_info is None:
            self.limits_label.setStyleSheet("")
            self.limits_label.setText("Connect to check these photos against your token's limits.")
            return True
        estimate = self.photos.total_bytes + (0 if self.photos.is_zip else 120 * self.photos.photo_count)
        try:
            check_limits(self.photos, estimate, self.token_info)
        except ClientError as exc:
            self._limits_ok = False
            self.limits_label.setStyleSheet("color: #b00020;")
            self.limits_label.setText(str(exc))
        else:
            self.limits_label.setStyleSheet("color: #1b5e20;")
            self.limits_label.setText("Within your token's limits.")
        self._update_buttons()
        return self._limits_ok

    # -- upload and processing --------------------------------------------------------------------------------

    @Slot()
    def upload_and_start(self) -> None:
        if self.photos is None or self.uploading:
            return
        if not self.server_edit.text().strip() or not self.token_edit.text().strip():
            self.show_error("Enter the server address and your token first.")
            return
        project = self.project_edit.text().strip() or None
        options = self.processing_options()
        if options is None:
            self.show_error("Choose at least one output format.")
            return
        source = self.photos.source
        self.cancel_event = threading.Event()
        cancel = self.cancel_event
        self.uploading = True
        self._speed = SpeedMeter()
        self.overall_bar.setValue(0)
        self.part_bar.setValue(0)
        self.show_info("Preparing the upload…")
        self._update_buttons()

        def work(report):
            with self.make_client() as client:
                result = client.upload(source, project, progress=report, cancel=cancel, options=options)
                if result.server_status in ("created", "uploading"):
                    client.start(result.project)
                return result

        self.tasks.start(work, done=self._uploaded, failed=self._upload_failed, progress=self._upload_progress,
                         cancelled=self._upload_cancelled)

    def _upload_progress(self, p: UploadProgress) -> None:
        now = time.monotonic()
        final = p.bytes_total and p.bytes_done >= p.bytes_total
        if p.phase == "retrying":
            self.speed_label.setText(p.message)
            return
        if now - self._last_progress_paint < 0.1 and not final:
            return  # repaint at most ten times a second
        self._last_progress_paint = now
        if p.phase in ("zipping", "hashing"):
            self.overall_bar.setFormat("Zipping photos %p%" if p.phase == "zipping" else "Checking zip %p%")
            self.overall_bar.setValue(int(100 * p.bytes_done / p.bytes_total) if p.bytes_total else 0)
            return
        if p.phase not in ("uploading", "uploaded") or not p.bytes_total:
            return
        self.overall_bar.setFormat(f"Overall %p% — {human_bytes(p.bytes_done)} of {human_bytes(p.bytes_total)}")
        self.overall_bar.setValue(int(100 * p.bytes_done / p.bytes_total))
        if p.part_bytes_total:
            self.part_bar.setFormat(f"Part {p.part_index + 1} of {p.part_count} — %p%")
            self.part_bar.setValue(int(100 * p.part_bytes_done / p.part_bytes_total))
        speed = self._speed.add(p.bytes_done)
        if speed:
            left = (p.bytes_total - p.bytes_done) / speed if speed > 0 else 0
            self.speed_label.setText(f"{human_bytes(speed)}/s · {human_duration(left)} left")

    def _uploaded(self, result: Any) -> None:
        self.uploading = False
        self.current_project = result.project
        self.overall_bar.setFormat("Overall %p% — uploaded")
        self.overall_bar.setValue(100)
        self.part_bar.setValue(100)
        self.speed_label.setText("")
        how = "Continued and finished" if result.resumed else "Finished"
        self.show_info(f"{how} uploading {result.project} ({result.photos} photos). Processing has started.")
        self.refresh_projects()
        self.follow(result.project)

    def _upload_failed(self, sentence: str) -> None:
        self.uploading = False
        self.speed_label.setText("")
        self.show_error(sentence)
        self.refresh_projects()
        self._update_buttons()

    def _upload_cancelled(self, sentence: str) -> None:
        self.uploading = False
        self.speed_label.setText("")
        self.show_info(sentence)
        self.refresh_projects()
        self._update_buttons()

    @Slot()
    def cancel_upload(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
        if self.uploading:
            self.show_info("Cancelling… Upload again later to continue where it stopped.")

    def follow(self, project: str) -> None:
        """Poll the project in the background, showing stage and progress until it finishes."""
        if self.waiting:
            return
        self.current_project = project
        self.waiting = True
        self.cancel_event = self.cancel_event if self.uploading else threading.Event()
        cancel = self.cancel_event
        self.stage_label.setText(f"{project}: waiting for the server…")
        self._update_buttons()

        def work(report):
            with self.make_client() as client:
                return client.wait(project, poll=self.poll_seconds, progress=report, cancel=cancel)

        self.tasks.start(work, done=self._processing_done, failed=self._processing_failed,
                         progress=self._processing_progress, cancelled=self._stopped_following)

    def processing_options(self) -> ProcessingOptions | None:
        """The options chosen in the window (None when no output format is ticked)."""
        formats = tuple(f for f, box in self.format_boxes.items() if box.isChecked())
        if not formats:
            return None
        return ProcessingOptions(quality=self.quality_combo.currentData(), masks=self.masks_combo.currentData(),
                                 texture_size=self.texture_combo.currentData() or None,
                                 target_faces=self.faces_spin.value() or None, formats=formats)

    def _processing_progress(self, info: ProjectInfo) -> None:
        self.current_info = info
        stage = f" — {info.stage}" if info.stage and info.stage != info.status else ""
        percent = f" {info.progress:.0f}%" if info.status == "processing" else ""
        if info.status not in ("queued", "processing"):
            eta = ""
        elif info.eta_seconds is not None:
            eta = f" · about {human_duration(info.eta_seconds)} left"
        else:
            eta = " · time left unknown"
        self.stage_label.setText(f"{info.name}: {info.status}{stage}{percent}{eta}")
        self.stage_bar.setValue(int(info.progress))
        self._update_project_row(info)

    def _processing_done(self, info: ProjectInfo) -> None:
        self.waiting = False
        self.current_info = info
        self.stage_label.setText(f"{info.name}: done — the 3D model is ready to download.")
        self.stage_bar.setValue(100)
        self.notify("OpenScan Cloud", f"{info.name} is done.")
        self.refresh_projects()
        self._update_buttons()

    def _stopped_following(self, sentence: str) -> None:
        self.waiting = False
        self.stage_label.setText(f"{self.current_project}: no longer followed here; it keeps its place on the "
                                 "server (select it below and Follow selected to watch again).")
        self._update_buttons()

    def _processing_failed(self, sentence: str) -> None:
        self.waiting = False
        self.stage_label.setText("Processing stopped.")
        self.show_error(sentence)
        self.refresh_projects()
        self._update_buttons()

    # -- results ----------------------------------------------------------------------------------------------

    def download_result(self, dest: str | None = None) -> None:
        project = self.current_project
        if not project:
            return
        if not isinstance(dest, str):
            if self.download_dir_fixed:
                dest = self.download_dir
            else:
                dest = QFileDialog.getExistingDirectory(self, "Save the result in…", self.download_dir)
                if not dest:
                    return
        self.download_dir = dest
        self.download_button.setEnabled(False)
        self.show_info(f"Downloading {project}…")

        def work(report):
            with self.make_client() as client:
                return client.download(dest, project, progress=report)

        def progress(p):
            if p.bytes_total:
                self.stage_bar.setFormat("Downloading %p%")
                self.stage_bar.setValue(int(100 * p.bytes_done / p.bytes_total))

        self.tasks.start(work, done=self._downloaded, failed=self._download_failed, progress=progress)

    #: True when `download_dir` should be used without asking (set by tests and by a saved preference).
    download_dir_fixed = False

    def _downloaded(self, path: Path) -> None:
        self.last_download = path
        self.stage_bar.setFormat("%p%")
        self.show_info(f"Saved the result to {path}.")
        desktop_settings.save(self.paths, desktop_settings.DesktopSettings(
            self.server_edit.text().strip(), self.token_edit.text().strip(), str(path.parent)))
        self.refresh_projects()
        self._update_buttons()

    def _download_failed(self, sentence: str) -> None:
        self.stage_bar.setFormat("%p%")
        self.show_error(sentence)
        self._update_buttons()

    @Slot()
    def open_folder(self) -> None:
        if self.last_download is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.last_download.parent)))

    # -- projects list ----------------------------------------------------------------------------------------

    def _records(self):
        server, token = self.server_edit.text().strip(), self.token_edit.text().strip()
        if server and token:
            return self.store.for_token(server, token)
        return self.store.all()

    def refresh_projects(self) -> None:
        """Fill the table from this machine's records (survives restarts)."""
        records = self._records()
        selected = self.current_project
        self.projects_table.blockSignals(True)
        self.projects_table.setRowCount(len(records))
        for row, r in enumerate(records):
            values = [r.project, r.status, f"{r.progress:.0f}%", str(r.photos), human_bytes(r.size)]
            for col, value in enumerate(values):
                self.projects_table.setItem(row, col, QTableWidgetItem(value))
            if r.project == selected:
                self.projects_table.selectRow(row)
        self.projects_table.blockSignals(False)

    def _update_project_row(self, info: ProjectInfo) -> None:
        for row in range(self.projects_table.rowCount()):
            item = self.projects_table.item(row, 0)
            if item is not None and item.text() == info.name:
                self.projects_table.setItem(row, 1, QTableWidgetItem(info.status))
                self.projects_table.setItem(row, 2, QTableWidgetItem(f"{info.progress:.0f}%"))

    def _project_selected(self) -> None:
        rows = self.projects_table.selectionModel().selectedRows()
        if not rows or self.uploading or self.waiting:
            return
        item = self.projects_table.item(rows[0].row(), 0)
        if item is None:
            return
        self.current_project = item.text()
        self.current_info = None
        self.refresh_remote(only=self.current_project)

    @Slot()
    def follow_selected(self) -> None:
        if self.current_project:
            self.follow(self.current_project)

    def refresh_remote(self, only: str | None = None) -> None:
        """Ask the server for the status of this machine's projects (all, or `only` one)."""
        if not self.server_edit.text().strip() or not self.token_edit.text().strip():
            return
        names = [only] if isinstance(only, str) else [r.project for r in self._records()]

        def work(_report):
            infos = []
            with self.make_client() as client:
                for name in names:
                    try:
                        infos.append(client.project_info(name))
                    except ClientError:
                        continue
            return infos

        def done(infos: list[ProjectInfo]) -> None:
            for info in infos:
                if info.name == self.current_project:
                    self.current_info = info
                    self.stage_label.setText(f"{info.name}: {info.status}"
                                             + (f" — {info.error}" if info.error else "")
                                             + "".join(f"\n⚠ {w}" for w in info.warnings))
                    self.stage_bar.setValue(int(info.progress))
            self.refresh_projects()
            self._update_buttons()

        self.tasks.start(work, done=done, failed=self.show_error)

    # -- closing ----------------------------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        """Stop background work; an interrupted upload continues next time (its state is on disk)."""
        if self.cancel_event is not None:
            self.cancel_event.set()
        self.tasks.wait_all(10_000)
        super().closeEvent(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.photos_box.dropEvent(event)
