"""All server configuration in one typed object.

`Settings` reads `OPENSCAN_*` environment variables (pydantic-settings); command-line flags override them by
passing keyword arguments. The object is created once at the edge (CLI / test) and handed down explicitly —
nothing deep inside the server reads the environment.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENSCAN_", extra="ignore")

    # --- where things live ---------------------------------------------------------------------------------
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/openscan.db"
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL put into upload/download links (e.g. https://cloud.example.org). "
        "Default: the URL the request came in on.",
    )
    secret_key: str | None = Field(
        default=None,
        description="HMAC key for signed links and derived tokens. Default: generated once and kept in "
        "<data_dir>/secret.key so that every process sharing the data dir agrees.",
    )

    storage_url: str | None = Field(
        default=None,
        description="s3://bucket[/prefix] to keep parts, inputs and results in S3-compatible object storage. "
        "Default: files under <data_dir>/storage.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:9000 (MinIO); unset: AWS")
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(default=None, description="unset: boto3's usual chain (AWS_* env, ...)")
    s3_secret_access_key: str | None = None
    s3_presign_endpoint_url: str | None = Field(
        default=None, description="S3 address put into presigned URLs if clients reach S3 by another name"
    )
    s3_create_bucket: bool = False
    s3_presign_seconds: int = Field(default=3600, description="lifetime of presigned download URLs")
    stale_upload_hours: float = Field(
        default=6.0, description="maintenance removes uploads broken off by a dying process (temp files; S3 "
        "incomplete multipart uploads) older than this; 0: never (e.g. leave it to a bucket lifecycle rule)",
    )
    s3_redirect_downloads: bool = Field(
        default=True, description="signed download links answer 307 to a presigned S3 GET (else stream via API)"
    )

    # --- legacy protocol ----------------------------------------------------------------------------------
    basic_auth: bool = True
    basic_auth_user: str = "openscan"
    basic_auth_password: str = "free"

    # --- uploads, links, retention ------------------------------------------------------------------------
    part_limit_bytes: int = 200_000_000
    upload_link_seconds: int = 4 * 3600
    retention_days: float = 30.0

    # --- tokens and credit --------------------------------------------------------------------------------
    public_daily_credit_gb: float = 10.0
    public_limit_photos: int = 400
    public_limit_filesize: int = 2_000_000_000
    private_credit_gb: float = 50.0
    private_limit_photos: int = 2000
    private_limit_filesize: int = 10_000_000_000
    request_token_per_email_per_day: int = 3
    request_token_per_ip_per_hour: int = 10
    public_creates_per_minute: int = Field(default=10, description="public token: projects one client may create "
                                           "per minute")
    public_open_projects_per_client: int = Field(default=5, description="public token: projects one client may "
                                                 "have waiting for uploads (created, not started)")
    public_open_bytes_per_client: int = Field(default=4_000_000_000, description="public token: declared bytes "
                                              "of one client's projects waiting for uploads")

    # --- request limits -----------------------------------------------------------------------------------
    max_json_body_bytes: int = Field(default=65_536, description="largest body of an API call that is not an "
                                     "upload (JSON, form, query-style POST)")
    max_json_depth: int = Field(default=32, description="deepest nesting of a JSON body")
    max_header_bytes: int = Field(default=65_536, description="request line + headers (larger: 431/400)")
    header_timeout_seconds: float = Field(default=15.0, description="a client must send its request line and "
                                          "headers within this time, else the connection is closed")
    trusted_proxies: str = Field(default="", description="comma-separated addresses of reverse proxies whose "
                                 "X-Forwarded-For/-Proto are believed (e.g. 127.0.0.1 behind nginx); empty: none")
    part_writer_stale_seconds: int = Field(default=30, description="a part upload that sent nothing for this long "
                                           "no longer blocks a resumable (Content-Range) upload of the same part")
    start_timeout_seconds: int = Field(default=900, description="a start (join + zip check) that did not finish "
                                       "in this time is considered dead, and the project can be started again")

    # --- zip checks ---------------------------------------------------------------------------------------
    zip_max_entries: int = 10_000
    zip_max_uncompressed_bytes: int = 50_000_000_000
    zip_max_ratio: float = 100.0

    # --- jobs ---------------------------------------------------------------------------------------------
    quality: str = "standard"
    lease_seconds: int = 120
    max_attempts: int = 3
    maintenance_interval_seconds: float = 30.0
    worker_offline_seconds: int = Field(
        default=60, description="a worker not heard from (claim poll or heartbeat) for this long is offline"
    )

    # --- email / webhooks ---------------------------------------------------------------------------------
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    mail_from: str = "OpenScan Cloud <noreply@localhost>"
    webhook_attempts: int = 4
    webhook_backoff_seconds: float = 2.0
    webhook_allow_private: bool = Field(default=False, description="allow webhooks to loopback/private/link-local "
                                        "addresses (only for closed networks: anyone creating a project could "
                                        "make this server call into them)")

    # --- polling path --------------------------------------------------------------------------------------
    poll_parts_limit: int = Field(
        default=1000, ge=1, description="projects with more parts than this list no upload links or parts in "
        "getProjectInfo / GET /api/v1/projects/{id} (page them with GET /api/v1/projects/{id}/parts)",
    )
    poll_read_connections: int = Field(default=8, ge=1, le=64,
                                       description="database connections of the polling path per process")
    poll_change_notices: bool = Field(
        default=True, description="on PostgreSQL, answer a revalidation (If-None-Match) whose project has not "
        "changed since from memory, kept current by the database's change notices (LISTEN/NOTIFY)",
    )
    events_interval_seconds: float = Field(default=1.0, gt=0,
                                           description="how often a progress stream looks for a change")
    events_keepalive_seconds: float = Field(default=15.0, gt=0,
                                            description="a ': keep-alive' comment after this much silence")

    # ------------------------------------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'openscan.db').resolve()}"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    def ensure_data_dir(self) -> None:
        """Create the data dir readable by the server's own user only (photos and the secret key live here)."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)

    def signing_key(self) -> bytes:
        """The HMAC key: from settings, or persisted in the data dir (created atomically on first use)."""
        if self.secret_key:
            return self.secret_key.encode()
        self.ensure_data_dir()
        path = self.data_dir / "secret.key"
        if not path.exists():
            tmp = path.with_name(f".secret.key.{secrets.token_hex(4)}")
            tmp.write_text(secrets.token_hex(32))
            tmp.chmod(0o600)
            try:
                # link() fails if another process won the race: then everybody uses the winner's key.
                import os

                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip().encode()
