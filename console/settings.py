"""The console's settings, read once from the environment (qunzhu.settings holds the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qunzhu import settings
from qunzhu.config import load_brand
from qunzhu.redisconn import cluster_mode


@dataclass(frozen=True)
class ConsoleSettings:
    """Where the console listens, what it reads, how long a sign-in lasts."""

    host: str
    port: int
    redis_url: str
    redis_cluster: bool
    brand: str
    brand_name: str
    groups_file: Path
    first_login_file: Path
    session_hours: int
    secure_cookie: bool
    project_root: Path = settings.PROJECT_ROOT  # whose data/ and domain.yml operators edit
    campaigns_file: Path | None = None  # the scheduler's (QZ_CAMPAIGNS_FILE); None: the project's

    @classmethod
    def from_env(cls) -> ConsoleSettings:
        brand = load_brand()
        return cls(
            host=settings.get("QZ_CONSOLE_HOST"),
            port=int(settings.get("QZ_CONSOLE_PORT")),
            redis_url=settings.redis_url(),
            redis_cluster=cluster_mode(),
            brand=brand.id,
            brand_name=brand.name,
            groups_file=settings.project_path("BRIDGE_GROUPS_FILE"),
            campaigns_file=settings.project_path("QZ_CAMPAIGNS_FILE"),
            first_login_file=settings.project_path("QZ_DATA_DIR") / "console-first-login.txt",
            session_hours=int(settings.get("QZ_CONSOLE_SESSION_HOURS")),
            secure_cookie=settings.get("QZ_CONSOLE_SECURE_COOKIE").strip() in ("1", "true"),
            project_root=settings.project_path("QZ_CONSOLE_PROJECT_DIR").resolve(),
        )
