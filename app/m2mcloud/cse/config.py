"""CSE settings: one frozen dataclass from defaults, `M2M_*` environment variables and CLI flags.

Every field is one setting; its environment variable is `M2M_<FIELD>` upper-cased and its CLI flag
`--<field>` with dashes, both derived from the field so the three can never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2mcloud.settings import ConfigError, add_arguments, args_values, env_values, setting

ENV_PREFIX = "M2M_"
__all__ = ["ENV_PREFIX", "CSEConfig", "ConfigError", "parse_cli"]


@dataclass(frozen=True)
class CSEConfig:
    http_host: str = setting("0.0.0.0", "address the HTTP binding listens on")
    http_port: int = setting(8080, "TCP port of the HTTP binding")
    http_root: str = setting("/", "URL path prefix under which oneM2M requests are served")
    http_threads: int = setting(8, "waitress worker threads")
    http_connection_limit: int = setting(
        4000, "open HTTP connections accepted at once (each keep-alive device holds one)"
    )
    cse_id: str = setting("id-in", "CSE-ID (without the leading slash)")
    cse_name: str = setting("cse-in", "resource name of the CSEBase")
    sp_id: str = setting("m2mcloud.example", "M2M Service Provider ID, used in absolute addresses")
    admin_originator: str = setting(
        "CAdmin", "originator allowed every operation on every resource"
    )
    data_dir: str = setting("./data", "directory of the embedded SQLite database")
    db_url: str = setting(
        "",
        "SQLAlchemy URL; default sqlite:///<data_dir>/cse.sqlite; "
        "postgresql+psycopg://user:pw@host/db selects PostgreSQL",
    )
    db_pool_size: int = setting(10, "database connections kept per process (PostgreSQL)")
    max_request_bytes: int = setting(1_048_576, "largest accepted request body in bytes")
    max_expiration_seconds: int = setting(
        5 * 365 * 86400, "expirationTime given to resources without one, and the cap"
    )
    expiry_interval: float = setting(10.0, "seconds between sweeps deleting expired resources")
    notify_workers: int = setting(4, "threads delivering notifications")
    notify_retries: int = setting(3, "delivery attempts per notification before it is dropped")
    notify_timeout: float = setting(3.0, "seconds to wait for a notification target to answer")
    notify_queue_size: int = setting(10_000, "pending notifications kept in memory per process")
    allow_s_originator: bool = setting(True, "let AEs register with an S-originator (S-AE-IDs)")
    mqtt: bool = setting(True, "serve the MQTT binding (--no-mqtt: HTTP only)")
    mqtt_host: str = setting("localhost", "MQTT broker host")
    mqtt_port: int = setting(1883, "MQTT broker port")
    mqtt_username: str = setting("", "MQTT user name (empty: anonymous)")
    mqtt_password: str = setting("", "MQTT password")
    mqtt_tls: bool = setting(False, "connect to the broker over TLS")
    mqtt_ca_file: str = setting("", "CA bundle for the broker's TLS certificate (default: system)")
    mqtt_share_group: str = setting("m2mcloud", "shared-subscription group of all CSE replicas")
    mqtt_keepalive: int = setting(30, "MQTT keep-alive seconds")
    mqtt_workers: int = setting(8, "threads handling MQTT requests (ordered per originator)")
    poa: str = setting(
        "",
        "comma-separated points of access announced in the CSEBase "
        "(default: http://<host>:<port> and the MQTT broker)",
    )
    upper_tester: bool = setting(
        True,
        "serve the oneM2M Upper Tester endpoint /__ut__ "
        "(conformance suites) to loopback clients only",
    )
    release: str = setting("3", "oneM2M release version sent in X-M2M-RVI of notifications")
    log_level: str = setting("INFO", "logging level")

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'cse.sqlite'}"

    @property
    def points_of_access(self) -> list[str]:
        if self.poa:
            return [p.strip() for p in self.poa.split(",") if p.strip()]
        import socket

        host = self.http_host if self.http_host not in ("0.0.0.0", "::", "") else (socket.getfqdn())
        out = [f"http://{host}:{self.http_port}{self.http_root.rstrip('/')}"]
        if self.mqtt:
            out.append(f"mqtt://{self.mqtt_host}:{self.mqtt_port}")
        return out

    @property
    def csi(self) -> str:
        """The CSE-ID with its leading slash, as used in csi and SP-relative addresses."""
        return f"/{self.cse_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> CSEConfig:
        return cls(**{**env_values(cls, ENV_PREFIX, env), **overrides})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(cls, parser, ENV_PREFIX)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> CSEConfig:
        return cls.from_env(env, **args_values(cls, args))

    def describe(self) -> dict[str, Any]:
        """Settings for the start-up log line, with the database password masked."""
        out = dataclasses.asdict(self)
        out["db_url"] = _mask_password(self.database_url)
        if out["mqtt_password"]:
            out["mqtt_password"] = "***"
        return out


def _mask_password(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def parse_cli(argv: Sequence[str]) -> CSEConfig:
    parser = argparse.ArgumentParser()
    CSEConfig.add_arguments(parser)
    return CSEConfig.from_args(parser.parse_args(list(argv)))
