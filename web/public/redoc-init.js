// ReDoc for /redoc, from this server's files only.
Redoc.init("/openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));
