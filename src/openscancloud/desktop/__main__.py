from openscancloud.desktop.app import run

raise SystemExit(run())
