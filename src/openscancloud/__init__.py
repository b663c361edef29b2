"""OpenScan Cloud: an open, self-hostable photogrammetry web API."""

__version__ = "0.1.0"
