"""The desktop uploader (`openscan-cloud desktop`): a PySide6 window on top of the client SDK."""
