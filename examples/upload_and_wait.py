"""Upload a folder of photos to OpenScan Cloud, wait for the 3D model, download it.

    OPENSCAN_SERVER=http://127.0.0.1:8000 OPENSCAN_TOKEN=... python examples/upload_and_wait.py photos/ results/

Run it again after any interruption: the upload continues where it stopped.
"""

import os
import sys

from openscancloud.client import Client, ClientError

photos, results = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "."
try:
    with Client(os.environ["OPENSCAN_SERVER"], os.environ["OPENSCAN_TOKEN"]) as client:
        upload = client.upload(photos, progress=lambda p: print(f"\r{p.phase} {p.bytes_done:,}/{p.bytes_total:,} bytes", end=""))
        print(f"\nuploaded {upload.photos} photos as {upload.project}")
        if upload.server_status in ("created", "uploading"):  # not started by an earlier run
            client.start()
        client.wait(progress=lambda info: print(f"\r{info.status} {info.stage or ''} {info.progress:.0f}%   ", end=""))
        print(f"\nsaved {client.download(results)}")
except ClientError as error:
    sys.exit(f"error: {error}")
