"""Simulator settings: one frozen dataclass from defaults, `M2M_DEVICES_*` environment variables
and CLI flags (flag `--<field>` with dashes, variable `M2M_DEVICES_<FIELD>`), so a Kubernetes Job
can pass every setting as an environment variable."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m2mcloud.settings import (
    ConfigError,
    add_arguments,
    args_values,
    check_choices,
    env_values,
    setting,
)

ENV_PREFIX = "M2M_DEVICES_"
__all__ = ["ENV_PREFIX", "ConfigError", "DevicesConfig"]


@dataclass(frozen=True)
class DevicesConfig:
    protocol: str = setting("mqtt", "transport of the devices", choices=("mqtt", "http"))
    devices: int = setting(100, "number of simulated devices (each its own AE and connection)")
    run_id: str = setting(
        "", "tag of this run, part of every AE name and originator (default: random)"
    )
    # Where the platform is.
    cse_url: str = setting(
        "http://127.0.0.1:8080",
        "HTTP address of the CSE (protocol http); several, comma-separated, spread the devices",
    )
    cse_id: str = setting("id-in", "CSE-ID of the CSE, as used in MQTT topics")
    cse_name: str = setting("cse-in", "resource name of the CSEBase")
    mqtt_host: str = setting("127.0.0.1", "MQTT broker host (protocol mqtt)")
    mqtt_port: int = setting(1883, "MQTT broker port")
    mqtt_username: str = setting("", "MQTT user name (empty: anonymous)")
    mqtt_password: str = setting("", "MQTT password")
    mqtt_qos: int = setting(1, "QoS of the request publications (0 or 1)")
    mqtt_keepalive: int = setting(60, "MQTT keep-alive in seconds")
    ack: str = setting(
        "response",
        "what acknowledges a reading: the oneM2M response (end to end through the CSE) or only "
        "the broker's PUBACK (measures the simulator and broker alone; MQTT QoS 1)",
        choices=("response", "puback"),
    )
    # The traffic profile.
    profile: str = setting(
        "constant", "traffic profile", choices=("constant", "step", "ramp", "file")
    )
    profile_file: str = setting("", "YAML file describing the profile (implies --profile file)")
    rate: float = setting(10.0, "readings/s: constant rate, or plateau rate of a ramp")
    base_rate: float = setting(0.0, "readings/s before and after a ramp")
    duration: float = setting(30.0, "seconds of a constant profile (total of a step profile)")
    ramp_up: float = setting(10.0, "seconds of the ramp from base to plateau rate")
    plateau: float = setting(20.0, "seconds at the plateau rate")
    ramp_down: float = setting(10.0, "seconds of the ramp back to the base rate")
    steps: str = setting(
        "", "step profile as 'seconds:rate,seconds:rate,...' (e.g. 10:50,10:200,10:50)"
    )
    # Device behaviour.
    stagger: float = setting(
        -1.0, "seconds over which devices connect and register (default: devices/200)"
    )
    max_inflight: int = setting(
        8, "unanswered readings per device before further readings are counted as backpressure"
    )
    timeout: float = setting(10.0, "seconds to wait for an answer before counting a timeout")
    container_mni: int = setting(0, "maxNrOfInstances of each data container (0: unset)")
    commands: bool = setting(
        False, "each device also creates a command container and subscribes to it"
    )
    notify_host: str = setting(
        "", "HTTP devices: address the CSE reaches the notification server at (default: own IP)"
    )
    notify_port: int = setting(0, "HTTP devices: port of the notification server (0: any)")
    cleanup: bool = setting(False, "delete the devices' AEs at the end of the run")
    http_workers: int = setting(16, "HTTP devices: threads sending requests")
    seed: int = setting(1, "seed of the simulated sensor readings")
    # Output.
    report: str = setting("devices-report.json", "path of the JSON report ('' to skip)")
    plot: str = setting("devices-timeline.png", "path of the PNG timeline ('' to skip)")
    progress: str = setting(
        "auto",
        "live progress: a refreshed line (tty), one line per interval (log) or none",
        choices=("auto", "tty", "log", "none"),
    )
    progress_interval: float = setting(1.0, "seconds between progress updates in log mode")
    max_error_ratio: float = setting(
        0.01, "exit 1 when errors / offered readings exceed this fraction"
    )
    # Replica sampling for the timeline (Kubernetes).
    kube_context: str = setting("", "kubeconfig context to sample the CSE replica count from")
    kubeconfig: str = setting("", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    kube_in_cluster: bool = setting(False, "sample replicas with the pod's service account")
    kube_namespace: str = setting("m2mcloud", "namespace of the CSE Deployment")
    kube_deployment: str = setting("cse", "name of the CSE Deployment")
    log_level: str = setting("WARNING", "logging level")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.devices < 1:
            raise ConfigError("--devices must be at least 1")
        if self.mqtt_qos not in (0, 1):
            raise ConfigError("--mqtt-qos must be 0 or 1")
        if self.ack == "puback" and (self.protocol != "mqtt" or self.mqtt_qos != 1):
            raise ConfigError("--ack puback needs --protocol mqtt and --mqtt-qos 1")
        if self.ack == "puback" and self.commands:
            raise ConfigError("--ack puback has no CSE to subscribe at: drop --commands")
        if self.max_inflight < 1:
            raise ConfigError("--max-inflight must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("--timeout must be positive")
        if self.run_id and not all(c.isalnum() or c in "-_" for c in self.run_id):
            raise ConfigError(f"--run-id {self.run_id!r}: use letters, digits, '-' and '_'")

    @property
    def stagger_seconds(self) -> float:
        return self.stagger if self.stagger >= 0 else self.devices / 200.0

    def public(self) -> dict[str, Any]:
        """The settings for the report, with the MQTT password masked."""
        out = dataclasses.asdict(self)
        if out["mqtt_password"]:
            out["mqtt_password"] = "***"
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> DevicesConfig:
        values = {**env_values(cls, ENV_PREFIX, env), **overrides}
        if values.get("profile_file") and "profile" not in overrides:
            values["profile"] = "file"
        if not values.get("run_id"):
            values["run_id"] = secrets.token_hex(3)
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(cls, parser, ENV_PREFIX)

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, env: Mapping[str, str] | None = None
    ) -> DevicesConfig:
        return cls.from_env(env, **args_values(cls, args))
