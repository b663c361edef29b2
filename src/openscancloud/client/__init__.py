"""OpenScan Cloud client: the Python SDK (`Client`), the `openscan-cloud upload/status/download/token-info`
commands (`client.cli`), and what they share (zip building, resumable part uploads, local upload state).

It talks to a server only over HTTP and imports nothing from the server packages.
"""

from openscancloud.client.client import DEFAULT_PART_SIZE, Client, check_limits, default_project_name
from openscancloud.client.errors import (
    ClientError,
    ConnectionFailed,
    InputError,
    InvalidToken,
    LimitExceeded,
    LinkExpired,
    NoImages,
    NotEnoughCredit,
    ProjectExists,
    ProjectFailed,
    ProjectNotFound,
    ProjectNotReady,
    ServerError,
    UploadCancelled,
    UploadIncomplete,
    WaitTimeout,
)
from openscancloud.client.models import (
    DownloadProgress,
    ProcessingOptions,
    ProjectInfo,
    QueueEstimate,
    ServerStatus,
    TokenInfo,
    UploadProgress,
    UploadResult,
)
from openscancloud.client.transport import RetryPolicy

__all__ = [
    "Client", "RetryPolicy", "DEFAULT_PART_SIZE", "check_limits", "default_project_name",
    "ClientError", "ConnectionFailed", "InputError", "InvalidToken", "LimitExceeded", "LinkExpired", "NoImages",
    "NotEnoughCredit", "ProjectExists", "ProjectFailed", "ProjectNotFound", "ProjectNotReady", "ServerError",
    "UploadCancelled", "UploadIncomplete", "WaitTimeout",
    "DownloadProgress", "ProcessingOptions", "ProjectInfo", "QueueEstimate", "ServerStatus", "TokenInfo", "UploadProgress",
    "UploadResult",
]
