"""Traffic profile math: rates, exact cumulative counts, the scheduler, and the YAML/CLI forms."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from m2mcloud.devices import profile as p
from m2mcloud.devices.config import ConfigError, DevicesConfig
from m2mcloud.devices.runner import build_profile


def test_constant_rate_and_count() -> None:
    prof = p.constant(50, 10)
    assert prof.duration == 10
    assert prof.rate_at(0) == 50
    assert prof.rate_at(9.99) == 50
    assert prof.rate_at(10) == 0  # over
    assert prof.count_until(2.5) == pytest.approx(125)
    assert prof.total == pytest.approx(500)


def test_ramp_is_the_holiday_peak() -> None:
    prof = p.ramp(base_rate=10, rate=110, ramp_up=10, plateau=20, ramp_down=5)
    assert prof.duration == 35
    assert prof.rate_at(0) == 10
    assert prof.rate_at(5) == pytest.approx(60)
    assert prof.rate_at(15) == 110
    assert prof.rate_at(32.5) == pytest.approx(60)
    # Areas: up (10+110)/2*10 = 600, plateau 2200, down (110+10)/2*5 = 300.
    assert prof.count_until(10) == pytest.approx(600)
    assert prof.count_until(30) == pytest.approx(2800)
    assert prof.total == pytest.approx(3100)
    assert prof.peak_rate == 110


def test_ramp_leaves_out_empty_phases() -> None:
    prof = p.ramp(0, 100, 0, 10, 0)
    assert len(prof.segments) == 1
    assert prof.total == pytest.approx(1000)


def test_steps() -> None:
    prof = p.steps(p.parse_steps("10:50, 5:200,10:50"))
    assert [s.start_rate for s in prof.segments] == [50, 200, 50]
    assert prof.rate_at(12) == 200
    assert prof.count_until(15) == pytest.approx(500 + 1000)
    assert prof.total == pytest.approx(2000)


@pytest.mark.parametrize("text", ["", "10", "10:x", "a:b:c"])
def test_bad_steps_say_how_to_write_them(text: str) -> None:
    with pytest.raises(p.ProfileError, match="seconds:rate"):
        p.parse_steps(text)


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([], "at least one segment"),
        ([p.Segment(0, 1, 1)], "duration must be a positive"),
        ([p.Segment(5, -1, 1)], "negative"),
    ],
)
def test_invalid_profiles(segments: list[p.Segment], message: str) -> None:
    with pytest.raises(p.ProfileError, match=message):
        p.Profile(segments)


def test_schedule_issues_exactly_the_integral_whatever_the_tick() -> None:
    prof = p.ramp(0, 333, 3.3, 2.1, 1.7)
    for tick in (0.001, 0.0137, 0.25, 1.0):
        sched = p.Schedule(prof)
        issued = 0
        t = 0.0
        while not sched.finished(t):
            t += tick
            n = sched.due(t)
            assert n >= 0
            issued += n
            # never ahead of the profile, never behind by a whole reading
            assert prof.count_until(t) - 1 < issued <= prof.count_until(t) + 1e-6
        assert issued == math.floor(prof.total) == sched.issued


def test_schedule_catches_up_after_a_stall() -> None:
    sched = p.Schedule(p.constant(100, 10))
    assert sched.due(0.5) == 50
    assert sched.due(0.5) == 0
    assert sched.due(3.0) == 250  # a stalled loop sends the backlog, it does not lose it


def test_yaml_segments(tmp_path: Path) -> None:
    f = tmp_path / "peak.yaml"
    f.write_text(
        "name: holiday\nsegments:\n"
        "  - {duration: 30, from: 0, to: 500}\n"
        "  - {duration: 60, rate: 500}\n"
        "  - {duration: 30, from: 500, to: 0}\n"
    )
    prof = p.load_file(f)
    assert prof.name == "holiday"
    assert prof.duration == 120
    assert prof.total == pytest.approx(7500 + 30000 + 7500)


@pytest.mark.parametrize(
    ("text", "duration", "total"),
    [
        ("kind: constant\nrate: 20\nduration: 3\n", 3, 60),
        ("kind: step\nsteps: [[2, 10], [1, 100]]\n", 3, 120),
        ("kind: step\nsteps: '2:10,1:100'\n", 3, 120),
        ("kind: ramp\nrate: 100\nramp_up: 2\nplateau: 1\nramp_down: 2\n", 5, 300),
    ],
)
def test_yaml_shorthands(tmp_path: Path, text: str, duration: float, total: float) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    prof = p.load_file(f)
    assert prof.duration == duration
    assert prof.total == pytest.approx(total)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n- 2\n", "must hold a mapping"),
        ("kind: wave\n", "needs `segments:` or `kind:`"),
        ("kind: constant\nrate: 5\n", "missing 'duration'"),
        ("segments:\n  - {duration: 5}\n", "give `rate`, or `from` and `to`"),
        ("kind: constant\nrate: fast\nduration: 2\n", "not a number"),
        ("segments: [\n", "not valid YAML"),
    ],
)
def test_yaml_errors_are_sentences(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(p.ProfileError, match=message):
        p.load_file(f)


def test_missing_profile_file() -> None:
    with pytest.raises(p.ProfileError, match="cannot read profile file"):
        p.load_file("/nonexistent/profile.yaml")


def test_profile_from_settings(tmp_path: Path) -> None:
    env = {"M2M_DEVICES_PROFILE": "ramp", "M2M_DEVICES_RATE": "40", "M2M_DEVICES_RAMP_UP": "1"}
    prof = build_profile(DevicesConfig.from_env(env, plateau=2.0, ramp_down=1.0))
    assert prof.name == "ramp"
    assert prof.total == pytest.approx(20 + 80 + 20)
    f = tmp_path / "p.yaml"
    f.write_text("kind: constant\nrate: 7\nduration: 2\n")
    prof = build_profile(DevicesConfig.from_env({"M2M_DEVICES_PROFILE_FILE": str(f)}))
    assert prof.total == pytest.approx(14)
    assert build_profile(DevicesConfig.from_env({}, profile="step", steps="1:5")).total == 5


def test_config_from_env_flags_and_validation() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    DevicesConfig.add_arguments(parser)
    args = parser.parse_args(["--devices", "7", "--commands", "--protocol", "http"])
    cfg = DevicesConfig.from_args(
        args,
        env={"M2M_DEVICES_DEVICES": "3", "M2M_DEVICES_TIMEOUT": "2.5", "M2M_DEVICES_RUN_ID": "x1"},
    )
    assert (cfg.devices, cfg.commands, cfg.protocol, cfg.timeout, cfg.run_id) == (
        7,
        True,
        "http",
        2.5,
        "x1",
    )
    assert DevicesConfig.from_env({}).run_id  # a random run id when none is given
    assert DevicesConfig.from_env({}, devices=400).stagger_seconds == 2.0
    assert (
        DevicesConfig.from_env({"M2M_DEVICES_MQTT_PASSWORD": "s3"}).public()["mqtt_password"]
        == "***"
    )
    with pytest.raises(ConfigError, match="M2M_DEVICES_DEVICES='many' is not a valid int"):
        DevicesConfig.from_env({"M2M_DEVICES_DEVICES": "many"})
    with pytest.raises(ConfigError, match="--protocol='coap': choose one of mqtt, http"):
        DevicesConfig.from_env({}, protocol="coap")
    with pytest.raises(ConfigError, match="--ack puback needs --protocol mqtt"):
        DevicesConfig.from_env({}, protocol="http", ack="puback")
    with pytest.raises(ConfigError, match="--run-id"):
        DevicesConfig.from_env({}, run_id="a/b")
