"""How `docs/img/desktop.png` is made: drive the desktop uploader against a running server and grab the window.

    xvfb-run -s "-screen 0 1280x1024x24" python examples/desktop_screenshot.py \\
        --server http://127.0.0.1:8000 --token TOKEN --photos PHOTOS_DIR --out docs/img/desktop.png

It connects, picks the photos, clicks Upload & start and takes the picture once processing shows a stage and a
percentage (or after --timeout seconds, whatever the window shows then).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--min-progress", type=float, default=20.0, help="wait until processing passes this %%")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from openscancloud.client.config import ClientPaths
    from openscancloud.desktop.window import MainWindow

    app = QApplication([])
    home = Path(tempfile.mkdtemp(prefix="openscan-shot-"))
    window = MainWindow(ClientPaths(home / "config", home / "state", home / "cache"), poll_seconds=1.0)
    window.show()

    def pump_until(condition, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    window.server_edit.setText(args.server)
    window.token_edit.setText(args.token)
    window.connect_server()
    pump_until(lambda: window.token_info is not None, 30)
    window.set_source(args.photos)
    pump_until(lambda: window.photos is not None, 30)
    window.upload_and_start()
    pump_until(lambda: window.current_info is not None and window.current_info.status == "processing"
               and window.current_info.progress >= args.min_progress or not (window.uploading or window.waiting),
               args.timeout)
    pump_until(lambda: False, 0.5)  # let the last repaint land
    args.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out))
    print(f"saved {args.out}: {window.stage_label.text()}")
    window.close()


if __name__ == "__main__":
    main()
