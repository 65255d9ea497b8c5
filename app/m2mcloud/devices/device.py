"""One simulated device: its identity, the oneM2M requests it makes, and its sensor readings.

Transport-neutral: a `Call` says what to send (operation, target, resource type, content) and
which response status codes count as success; the MQTT and HTTP fleets carry it.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

CREATE, RETRIEVE, UPDATE, DELETE, NOTIFY = 1, 2, 3, 4, 5
TY_AE, TY_CNT, TY_CIN, TY_SUB = 2, 3, 4, 23
RSC_OK, RSC_CREATED, RSC_DELETED = 2000, 2001, 2002
# A repeated run with the same --run-id finds its resources there already: that is fine.
RSC_CONFLICT, RSC_ALREADY_REGISTERED = 4105, 4117

APP_ID = "Nm2mcloud.devices"
DATA, COMMANDS = "data", "cmd"


@dataclass(frozen=True)
class Call:
    op: int
    to: str  # CSE-relative, without leading slash: "cse-in/dev-x/data"
    ty: int | None = None
    pc: dict[str, Any] | None = None
    ok: frozenset[int] = frozenset({RSC_CREATED})
    kind: str = "reading"  # reading | setup | cleanup


@dataclass
class Device:
    index: int
    run_id: str
    cse_name: str
    seed: int = 1
    seq: int = 0
    poa: list[str] = field(default_factory=list)
    rng: random.Random = field(init=False)
    # The device's place on a motorway (the holiday-departure scenario) and its sensor state.
    lat: float = field(init=False)
    lon: float = field(init=False)
    heading: float = field(init=False)
    temp_offset: float = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 1_000_003 + self.index)
        self.lat = 45.0 + self.rng.uniform(-2.0, 2.0)
        self.lon = 5.0 + self.rng.uniform(-2.0, 2.0)
        self.heading = self.rng.uniform(0, 2 * math.pi)
        self.temp_offset = self.rng.uniform(-3.0, 3.0)

    @property
    def name(self) -> str:
        return f"dev-{self.run_id}-{self.index:05d}"

    @property
    def originator(self) -> str:
        return "C" + self.name

    @property
    def path(self) -> str:
        return f"{self.cse_name}/{self.name}"

    def setup_calls(self, *, mni: int = 0, commands: bool = False) -> list[Call]:
        exists = frozenset({RSC_CREATED, RSC_CONFLICT, RSC_ALREADY_REGISTERED})
        ae: dict[str, Any] = {
            "rn": self.name,
            "api": APP_ID,
            "rr": commands,
            "srv": ["3"],
            "lbl": [f"m2mcloud/run:{self.run_id}", "m2mcloud/device"],
        }
        if self.poa:
            ae["poa"] = list(self.poa)
        data: dict[str, Any] = {"rn": DATA, "lbl": ["m2mcloud/data"]}
        if mni > 0:
            data["mni"] = mni
        calls = [
            Call(CREATE, self.cse_name, TY_AE, {"m2m:ae": ae}, exists, "setup"),
            Call(CREATE, self.path, TY_CNT, {"m2m:cnt": data}, exists, "setup"),
        ]
        if commands:
            sub = {"rn": "commands", "nu": [self.originator], "nct": 1, "enc": {"net": [3]}}
            calls += [
                Call(CREATE, self.path, TY_CNT, {"m2m:cnt": {"rn": COMMANDS}}, exists, "setup"),
                Call(CREATE, f"{self.path}/{COMMANDS}", TY_SUB, {"m2m:sub": sub}, exists, "setup"),
            ]
        return calls

    def cleanup_call(self) -> Call:
        return Call(DELETE, self.path, ok=frozenset({RSC_DELETED}), kind="cleanup")

    def reading(self, now: float | None = None) -> Call:
        """The next sensor reading as a contentInstance CREATE in the data container."""
        now = time.time() if now is None else now
        self.seq += 1
        rng = self.rng
        # Drive along the heading at ~110 km/h with small turns; temperature follows the day.
        self.heading += rng.gauss(0.0, 0.05)
        step = 0.0003
        self.lat += step * math.cos(self.heading)
        self.lon += step * math.sin(self.heading)
        day = (now % 86400.0) / 86400.0
        temperature = 18.0 + self.temp_offset + 6.0 * math.sin(2 * math.pi * (day - 0.3))
        temperature += rng.gauss(0.0, 0.2)
        humidity = min(100.0, max(0.0, 55.0 - 1.5 * (temperature - 18.0) + rng.gauss(0.0, 1.0)))
        content = {
            "device": self.name,
            "seq": self.seq,
            "ts": _timestamp(now),
            "temperature": round(temperature, 2),
            "humidity": round(humidity, 1),
            "position": {"lat": round(self.lat, 6), "lon": round(self.lon, 6)},
            "speed_kmh": round(max(0.0, 110.0 + rng.gauss(0.0, 8.0)), 1),
        }
        cin = {"cnf": "application/json:0", "con": json.dumps(content, separators=(",", ":"))}
        return Call(CREATE, f"{self.path}/{DATA}", TY_CIN, {"m2m:cin": cin})


def _timestamp(now: float) -> str:
    """oneM2M basic time format with milliseconds: 20261125T145300,123."""
    frac = int((now % 1.0) * 1000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f",{frac:03d}"


def rsc_class(rsc: int) -> str:
    """The error class name of a response status code in the report."""
    return f"rsc:{rsc}" + (f" {RSC_NAMES[rsc]}" if rsc in RSC_NAMES else "")


RSC_NAMES = {
    4000: "BAD_REQUEST",
    4004: "NOT_FOUND",
    4005: "OPERATION_NOT_ALLOWED",
    4008: "REQUEST_TIMEOUT",
    4015: "UNSUPPORTED_MEDIA_TYPE",
    4102: "CONTENTS_UNACCEPTABLE",
    4103: "ORIGINATOR_HAS_NO_PRIVILEGE",
    4105: "CONFLICT",
    4106: "ORIGINATOR_HAS_NOT_REGISTERED",
    4107: "SECURITY_ASSOCIATION_REQUIRED",
    4117: "ORIGINATOR_HAS_ALREADY_REGISTERED",
    5000: "INTERNAL_SERVER_ERROR",
    5001: "NOT_IMPLEMENTED",
    5103: "TARGET_NOT_REACHABLE",
    5204: "SUBSCRIPTION_VERIFICATION_INITIATION_FAILED",
}
