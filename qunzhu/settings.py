"""Every environment variable the stack reads, with its default, in one place.

The README's configuration table mirrors SETTINGS; a test keeps the two in step.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default and why it exists."""

    name: str
    default: str
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting("REDIS_URL", "", "Redis for game state, trackers and locks; unset = embedded Redis"),
    Setting("QZ_DATA_DIR", ".data", "where the embedded Redis keeps its data between runs"),
    Setting("QZ_REDIS_CLUSTER", "", "1 = REDIS_URL names a node of a Redis Cluster (every Lua "
            "script keeps its keys in one slot)"),
    Setting("QZ_EMBEDDED_REDIS_PORT", "6390", "TCP port of the embedded Redis on 127.0.0.1"),
    Setting("QZ_RASA_PORT", "5005", "port of the Rasa server on 127.0.0.1"),
    Setting("QZ_RASA_STANDBY_PORT", "5006", "port of the second Rasa slot on 127.0.0.1: a "
            "publish starts the new model there, then turns move to it"),
    Setting("QZ_RASA_API_TOKEN", "", "token of the Rasa slots' HTTP API (the publisher warms a "
            "new model through it); unset = a new random one each `make run`"),
    Setting("QZ_PUBLISH_DRAIN_S", "10", "seconds the old model keeps answering turns already "
            "sent to it after a publish switched to the new one"),
    Setting("QZ_ACTIONS_PORT", "5055", "port of the action server on 127.0.0.1"),
    Setting("QZ_TRACKER_TTL_S", "2592000", "seconds a conversation tracker is kept (30 days)"),
    Setting("QZ_BRAND_FILE", "data/brand.yml", "brand facts quoted by FAQ answers and games"),
    Setting("QZ_GAMES_FILE", "data/games.yml", "check-in, coupon, lucky-draw and shop rules"),
    Setting("QZ_CAMPAIGNS_FILE", "data/campaigns.yml",
            "campaigns: scheduled group posts and their anti-spam budget"),
    Setting("QZ_CUSTOMER_GROUPS_FILE", "data/customer_groups.yml",
            "customer groups (外部群): welcome templates synced to WeCom and owner-confirmed "
            "群发"),
    Setting("QZ_DOMAIN_FILE", "domain.yml",
            "where the action server reads FAQ answers' wordings live (the console edits them)"),
    Setting("QZ_REDIS_TIMEOUT_S", "2", "socket timeout of the actions' Redis client"),
    Setting("QZ_FAKE_NOW", "", "pin the games' clock to an ISO time (demos and tests only)"),
    Setting("QZ_CHAT_GROUP", "sandbox", "chat id the terminal chat uses for its group"),
    Setting("QZ_CHAT_USER", "xiaoming", "sandbox member the terminal chat starts as"),
    Setting("QZ_SHOW_DEPRECATIONS", "", "1 = show the libraries' deprecation notices again"),
    Setting("QZ_EVENT_SHARDS", "4", "streams each brand's events are spread over (the console's "
            "numbers are built from them); change only with the aggregator stopped and drained"),
    Setting("QZ_FUZZ_EXAMPLES", "4000", "tests only: generated inputs per bridge route"),
    Setting("QZ_FUZZ_RANDOM", "", "tests only: 1 = new fuzz inputs each run (make fuzz)"),
    # The WeCom bridge (bot/).
    Setting("BRIDGE_HOST", "127.0.0.1", "address the bridge listens on"),
    Setting("BRIDGE_PORT", "5080", "port of the bridge (WeCom callbacks and the HTTP API)"),
    Setting("BRIDGE_URL", "http://127.0.0.1:{BRIDGE_PORT}",
            "where the actions reach the bridge's API (follows BRIDGE_PORT)"),
    Setting("BRIDGE_API_TOKEN", "", "bearer token of the bridge's HTTP API; unset = API refused"),
    Setting("BRIDGE_GROUPS_FILE", "data/groups.yml", "groups, their robot webhook keys, staff"),
    Setting("RASA_URL", "http://127.0.0.1:{QZ_RASA_PORT}",
            "the Rasa server(s) the bridge sends turns to (follows QZ_RASA_PORT); several, "
            "comma-separated, share turns"),
    Setting("BRIDGE_RASA_TIMEOUT_S", "8", "how long one Rasa call may take before it is retried"),
    Setting("BRIDGE_TURN_FRESH_S", "90",
            "how long a failed turn is retried before the member gets the busy reply"),
    Setting("BRIDGE_WORKERS", "16", "turns processed at once per bridge process"),
    Setting("BRIDGE_SEND_CONCURRENCY", "64", "webhook posts in flight at once per bridge"),
    Setting("BRIDGE_ROLES", "turns,sender,handoff,events,campaigns", "background loops this "
            "bridge process runs (events = the aggregator of the console's numbers, campaigns = "
            "the campaign scheduler)"),
    Setting("BRIDGE_SANDBOX_CLOCK_URL", "", "the sandbox only (`make run` sets it): the "
            "simulator's /sim/clock, whose simulated time the campaign scheduler follows so a "
            "demo can fast-forward to the next post; a loopback URL, never set in production"),
    Setting("BRIDGE_RECLAIM_IDLE_MS", "60000", "how long an entry a process took sits "
            "untouched before another process takes it over (that one died)"),
    Setting("QZ_BRIDGE_PROCESSES", "2", "bridge processes `make run` starts on BRIDGE_PORT "
            "(they share the port; one that dies leaves the others answering)"),
    Setting("BRIDGE_CONSUMER", "", "this process's name in the streams' consumer groups; unset ="
            " bridge-<host>-<BRIDGE_PORT>, the same after a restart"),
    Setting("BRIDGE_SPOOL_DIR", "{QZ_DATA_DIR}/spool",
            "where callbacks and posts wait on disk while Redis is down (one folder per "
            "consumer; keep it on a persistent volume)"),
    Setting("BRIDGE_SPOOL_MAX_MB", "64", "size bound of the spool; when full, callbacks get 503"),
    Setting("WECOM_TOKEN", "", "callback Token (secret); unset = callbacks refused"),
    Setting("WECOM_ENCODING_AES_KEY", "", "callback EncodingAESKey, 43 characters (secret)"),
    Setting("WECOM_CORP_ID", "", "CorpID: the app callback's receiveid and API identity"),
    Setting("WECOM_CORP_SECRET", "", "app secret for the member-list API (secret)"),
    Setting("WECOM_API_BASE", "https://qyapi.weixin.qq.com", "WeCom API (the simulator's in run)"),
    # The operator console (console/).
    Setting("QZ_CONSOLE_HOST", "127.0.0.1", "address the operator console listens on"),
    Setting("QZ_CONSOLE_PORT", "5095", "port of the operator console (pages and its HTTP API)"),
    Setting("QZ_CONSOLE_SESSION_HOURS", "12", "how long a console sign-in lasts"),
    Setting("QZ_CONSOLE_PROJECT_DIR", ".", "the git checkout whose data/ and domain.yml the "
            "console's 教机器人 edits and commits, and 发布 trains from (relative to the project)"),
    Setting("QZ_CONSOLE_SECURE_COOKIE", "", "1 = the console is served over HTTPS: its session "
            "cookie is sent only there"),
    Setting("QZ_SIM_PORT", "5090", "port of the local WeCom simulator and sandbox page"),
    Setting("QZ_NO_SIMULATOR", "", "set to 1 to run against real WeCom instead of the simulator"),
)


_DERIVED = re.compile(r"\{([A-Z_]+)\}")


def get(name: str) -> str:
    """Read a setting, falling back to its documented default.

    A default may name another setting (`http://127.0.0.1:{QZ_RASA_PORT}`), so changing one
    port moves every address that points at it instead of silently breaking them.
    """
    for setting in SETTINGS:
        if setting.name == name:
            if name in os.environ:
                return os.environ[name]
            return _DERIVED.sub(lambda m: get(m.group(1)), setting.default)
    raise KeyError(f"unknown setting {name}")


def redis_url() -> str:
    """The Redis everything uses: REDIS_URL, or the embedded one on its fixed port."""
    return get("REDIS_URL") or f"redis://127.0.0.1:{get('QZ_EMBEDDED_REDIS_PORT')}/0"


@dataclass(frozen=True)
class RedisParts:
    """A Redis URL split into the fields Rasa's endpoints.yml wants."""

    host: str
    port: int
    db: int
    password: str
    use_ssl: bool


def redis_parts(url: str) -> RedisParts:
    """Split redis://[:password@]host:port/db (or rediss://) for Rasa's tracker/lock stores."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError("REDIS_URL must start with redis:// or rediss://")
    db_text = parsed.path.lstrip("/") or "0"
    if not db_text.isdigit():
        raise ValueError("REDIS_URL database must be a number, e.g. redis://host:6379/0")
    return RedisParts(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 6379,
        db=int(db_text),
        password=unquote(parsed.password or ""),
        use_ssl=parsed.scheme == "rediss",
    )


def project_path(name: str) -> Path:
    """A path setting, relative to the project unless absolute."""
    path = Path(get(name))
    return path if path.is_absolute() else PROJECT_ROOT / path


def shown_path(path: Path) -> str:
    """A path as an operator knows it: relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
