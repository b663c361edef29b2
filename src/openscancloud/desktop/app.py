"""Start the desktop uploader: `openscan-cloud desktop` or `python -m openscancloud.desktop`."""

from __future__ import annotations

import sys


def run(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from openscancloud.desktop.window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("OpenScan Cloud Uploader")
    app.setOrganizationName("OpenScan")
    window = MainWindow()
    window.show()
    return app.exec()
