"""Service settings, read once from `EVALSIGN_*` variables and handed down explicitly.

They live in the bottom layer so every package may take a `Settings` argument without
importing upwards.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVALSIGN_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Database, vault and documents.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to SQLite under data_dir."
    )
    center_name: str = "EvalSign Demo Center"
    host: str = "127.0.0.1"
    port: int = 8000
    # Base64 of 32 bytes; when unset the local vault keeps its key file under data_dir.
    master_key: str | None = None
    max_request_bytes: int = 1 * 1024 * 1024
    max_import_bytes: int = 16 * 1024 * 1024
    max_import_rows: int = 50_000
    page_size_default: int = 50
    page_size_max: int = 500
    log_level: str = "INFO"
    sqlite_busy_timeout_ms: int = 30_000

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'evalsign.db').resolve()}"

    @property
    def vault_dir(self) -> Path:
        return self.data_dir / "vault"
