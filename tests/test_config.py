"""Profiles: the shipped ones are valid, every bad field is named with its reason, and
calibration's threshold rewrite keeps everything else."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_runtime.cli import main
from edge_runtime.config import (
    Profile,
    load_profile,
    set_threshold_text,
    with_overrides,
    write_threshold,
)
from edge_runtime.errors import ConfigError
from tests.conftest import REPO

PROFILES = sorted((REPO / "firmware_config").glob("*.toml"))


def test_the_four_shipped_profiles_are_valid() -> None:
    names = {p.name for p in PROFILES}
    assert {"rpi4.toml", "rpi5.toml", "rpi-zero2w.toml", "voice-lock.toml"} <= names
    for path in PROFILES:
        profile = load_profile(path)
        assert profile.name == path.stem


def test_schema_readme_documents_every_field() -> None:
    readme = (REPO / "firmware_config" / "README.md").read_text()
    for path in PROFILES:
        raw = tomllib.loads(path.read_text())

        def walk(table: dict, prefix: str = "") -> None:
            for key, value in table.items():
                if isinstance(value, dict):
                    assert f"[{prefix}{key}]" in readme, f"table [{prefix}{key}] undocumented"
                    walk(value, f"{prefix}{key}.")
                else:
                    assert f"`{key}`" in readme, f"field {prefix}{key} undocumented"

        walk(raw)


def test_defaults_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert load_profile(path) == Profile(name="empty", source=path)


def test_relative_paths_resolve_against_the_profile_folder(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[model]\npath = "models/m.tflite"\n[actions.clips]\ndir = "clips"\n')
    profile = load_profile(path)
    assert profile.model.path == tmp_path.resolve() / "models" / "m.tflite"
    assert profile.actions.clips.dir == tmp_path.resolve() / "clips"


BAD = [
    ('name = 3', "name: expected a string"),
    ('[audio]\ndevice = 1.5', "audio.device: expected an index or a name"),
    ('[audio]\ndevice = -1', "audio.device: must be >= 0"),
    ('[audio]\ndevice = ""', "audio.device: must not be empty"),
    ('[audio]\nrate = "48k"', "audio.rate: expected an integer"),
    ('[audio]\nrate = 44100.0', "audio.rate: expected an integer"),
    ('[audio]\nrate = 100', "audio.rate: must be >= 8000"),
    ('[audio]\nchannels = 0', "audio.channels: must be >= 1"),
    ('[audio]\nchannels = true', "audio.channels: expected an integer"),
    ('[audio]\nchunk = 10', "audio.chunk: must be >= 64"),
    ('[audio]\nretries = -1', "audio.retries: must be >= 0"),
    ('[audio]\nretry_backoff = "1s"', "audio.retry_backoff: expected a number"),
    ('[audio]\nretry_backoff = 100', "audio.retry_backoff: must be <= 60"),
    ('[audio]\nstall_timeout = 0', "audio.stall_timeout: must be > 0"),
    ('[audio]\nstall_timeout = nan', "audio.stall_timeout: must be finite"),
    ('[audio]\nvolume = 3', "audio.volume: unknown field"),
    ('audio = 3', "audio: expected a table"),
    ('[model]\npath = 3', "model.path: expected a string"),
    ('[model]\nthreads = 0', "model.threads: must be >= 1"),
    ('[model]\nthreads = 2.5', "model.threads: expected an integer"),
    ('[model]\nthreshold = 1.5', "model.threshold: must be <= 1"),
    ('[model]\nthreshold = -0.1', "model.threshold: must be >= 0"),
    ('[model]\nthreshold = "high"', "model.threshold: expected a number"),
    ('[model]\ntreshold = 0.5', "model.treshold: unknown field"),
    ('[stream]\nhop = 0', "stream.hop: must be >= 0.01"),
    ('[stream]\nhop = 5', "stream.hop: must be <= 4"),
    ('[stream]\nmax_utterance = 0.5', "stream.max_utterance: must be >= 1"),
    ('[gate]\nkind = "vad"', "gate.kind: must be one of energy, webrtcvad, off"),
    ('[gate]\nthreshold_db = 10', "gate.threshold_db: must be <= 0"),
    ('[gate]\nthreshold_db = "loud"', "gate.threshold_db: expected a number"),
    ('[gate]\nmargin_db = -1', "gate.margin_db: must be >= 0"),
    ('[gate]\nmin_speech = 0', "gate.min_speech: must be >= 0.01"),
    ('[gate]\nhangover = 20', "gate.hangover: must be <= 10"),
    ('[gate]\nvad_mode = 4', "gate.vad_mode: must be <= 3"),
    ('[smoothing]\nmethod = "median"', "smoothing.method: must be one of mean, k_of_n"),
    ('[smoothing]\nn = 0', "smoothing.n: must be >= 1"),
    ('[smoothing]\nn = 3\nk = 4', "smoothing.k: must be <= smoothing.n"),
    ('[actions]\non_spoof = 1', "actions.on_spoof: expected a string"),
    ('[actions]\non_bonafide = " "', "actions.on_bonafide: must not be empty"),
    ('[actions]\nhook_timeout = 0', "actions.hook_timeout: must be > 0"),
    ('[actions.gpio]\ntrigger = "spoof"', "actions.gpio.pin: required"),
    ('[actions.gpio]\npin = 17\ntrigger = "always"', "actions.gpio.trigger: must be one of"),
    ('[actions.gpio]\npin = 17\nactive_high = 1', "actions.gpio.active_high: expected true or"),
    ('[actions.gpio]\npin = 17\nhold = 0', "actions.gpio.hold: must be > 0"),
    ('[actions.gpio]\npin = 17\nlevel = 1', "actions.gpio.level: unknown field"),
    ('[actions.clips]\nmax_mb = 5', "actions.clips.dir: required"),
    ('[actions.clips]\ndir = "c"\nmax_mb = 0', "actions.clips.max_mb: must be > 0"),
    ('[calibration]\ntarget_frr = 1.0', "calibration.target_frr: must be < 1"),
    ('[calibration]\ntarget_frr = -0.1', "calibration.target_frr: must be >= 0"),
    ('[calibration]\nseconds = 0.5', "calibration.seconds: must be >= 1"),
    ('[extra]\nx = 1', "extra: unknown field"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0] + "-" + str(i)
                                                        for i, (_, m) in enumerate(BAD)])
def test_each_bad_field_is_named_with_its_reason(tmp_path: Path, text: str,
                                                 message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: ")
    assert message in line


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such profile"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_profile(tmp_path)
    broken = tmp_path / "broken.toml"
    broken.write_text("[audio\nrate = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(broken)


def test_flags_override_profile_fields() -> None:
    profile = load_profile(REPO / "firmware_config" / "rpi4.toml")
    changed = with_overrides(profile, audio={"rate": 44100, "device": None},
                             stream={"hop": 0.25}, gate={"kind": None})
    assert changed.audio.rate == 44100 and changed.audio.chunk == profile.audio.chunk
    assert changed.stream.hop == 0.25 and changed.gate == profile.gate
    assert profile.audio.rate == 48000  # frozen: the original is untouched


def test_set_threshold_replaces_only_that_line() -> None:
    text = ("# my lock\nname = \"x\"\n\n[gate]\nthreshold_db = -40.0  # loud room\n\n"
            "[model]\nthreads = 2\nthreshold = 0.5   # old\n\n[actions]\non_spoof = \"true\"\n")
    updated = set_threshold_text(text, 0.6123456, "calibrated")
    assert updated.replace("threshold = 0.6123456  # calibrated", "threshold = 0.5   # old") == text
    exact = np.nextafter(0.5, 1.0)  # calibration's thresholds sit just above a score
    assert tomllib.loads(set_threshold_text(text, exact))["model"]["threshold"] == exact
    assert "threshold_db = -40.0  # loud room" in updated


def test_set_threshold_adds_the_line_or_the_table() -> None:
    with_model = "[model]\nthreads = 2\n[gate]\nkind = \"off\"\n"
    added = tomllib.loads(set_threshold_text(with_model, 0.25))
    assert added["model"] == {"threads": 2, "threshold": 0.25} and added["gate"]["kind"] == "off"
    without = "name = \"y\"\n[gate]\nthreshold = 3"  # a gate 'threshold' is not the model's
    appended = tomllib.loads(set_threshold_text(without, 0.75))
    assert appended["model"] == {"threshold": 0.75} and appended["gate"]["threshold"] == 3


def test_write_threshold_is_atomic_and_preserves_the_profile(tmp_path: Path) -> None:
    source = REPO / "firmware_config" / "voice-lock.toml"
    path = tmp_path / "voice-lock.toml"
    path.write_text(source.read_text())
    os.chmod(path, 0o640)
    before = load_profile(path)
    updated = write_threshold(path, 0.42, comment="test")
    assert updated.model.threshold == pytest.approx(0.42)
    after = load_profile(path)
    assert after.model.threshold == pytest.approx(0.42)
    # Everything else is unchanged, field for field, and so is every other line.
    assert after.actions == before.actions and after.gate == before.gate
    old_lines = source.read_text().splitlines()
    new_lines = path.read_text().splitlines()
    assert len(new_lines) == len(old_lines) + 1
    assert [ln for ln in new_lines if not ln.startswith("threshold =")] == old_lines
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["voice-lock.toml"]  # no temp file left


def test_write_threshold_refuses_a_broken_profile_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[model]\nthreads = 0\n")
    with pytest.raises(ConfigError, match=r"model\.threads"):
        write_threshold(path, 0.5)
    assert path.read_text() == "[model]\nthreads = 0\n"


def test_config_check_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["config", "check", *map(str, PROFILES)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == len(PROFILES)
    bad = tmp_path / "bad.toml"
    bad.write_text("[gate]\nthreshold_db = \"loud\"\n")
    result = runner.invoke(main, ["config", "check", str(bad), str(PROFILES[0])])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"edge-detect: error: {bad}: gate.threshold_db: expected a number, got 'loud'"
    )
    assert ": ok (" in result.stdout
    missing_model = tmp_path / "m.toml"
    missing_model.write_text('[model]\npath = "nope.tflite"\n')
    result = runner.invoke(main, ["config", "check", str(missing_model)])
    assert result.exit_code == 2 and "model.path" in result.stderr
