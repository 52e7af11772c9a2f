"""Device profiles: the shipped ``devices/*.toml`` files, lookup, and validation errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from voicegw.errors import ConfigError
from voicegw.profiles import (
    DeviceProfile,
    FileSpec,
    list_profiles,
    load_profile,
    parse_profile,
    profile_dirs,
)

REPO_DEVICES = Path(__file__).resolve().parents[2] / "devices"
SHIPPED = ["kiosk-speaker", "respeaker-2mic", "usb-generic", "usb-speakerphone", "virtual-file"]


def parse(text: str) -> DeviceProfile:
    return parse_profile(tomllib.loads(text), name="test")


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value


# ---------------------------------------------------------------- shipped profiles


def test_the_repo_devices_folder_is_searched_first() -> None:
    assert profile_dirs()[0] == REPO_DEVICES
    assert set(SHIPPED) <= set(list_profiles())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.path == REPO_DEVICES / f"{name}.toml"
    assert profile.description
    assert profile.echo_policy_for("server_vad") in ("half_duplex", "full_duplex", "duck")


def test_every_toml_in_devices_is_a_valid_profile() -> None:
    for path in sorted(REPO_DEVICES.glob("*.toml")):
        assert load_profile(path).name == path.stem


def test_respeaker_2mic() -> None:
    p = load_profile("respeaker-2mic")
    assert p.backend == "portaudio"
    alternatives = p.input.device.split("|")
    assert {"seeed-2mic", "seeed2micvoicec"} <= set(alternatives)
    assert (p.input.rate, p.input.channels, p.input.channel) == (16000, 2, 0)
    assert (p.output.rate, p.output.channels) == (16000, 2)
    assert (p.button.kind, p.button.pin, p.button.active_low) == ("gpio", 17, True)
    # No AEC: a VAD session is half duplex; push-to-talk is full duplex (a press flushes
    # playback first, and muting would cut the first syllable).
    assert p.echo_policy == "auto" and not p.hardware_aec
    assert p.echo_policy_for("server_vad") == "half_duplex"
    assert p.echo_policy_for("ptt") == "full_duplex"


def test_usb_generic() -> None:
    p = load_profile("usb-generic")
    assert p.input.device == p.output.device == "USB Audio"
    assert (p.input.rate, p.input.channels) == (48000, 1)
    assert (p.output.rate, p.output.channels) == (48000, 2)
    assert p.echo_policy == "auto" and not p.hardware_aec
    assert p.echo_policy_for("local_vad") == "half_duplex"


def test_usb_speakerphone_is_full_duplex_because_of_hardware_aec() -> None:
    p = load_profile("usb-speakerphone")
    assert {"Speakerphone", "Jabra", "Anker PowerConf", "eMeet"} <= set(p.input.device.split("|"))
    assert p.hardware_aec and p.echo_policy == "full_duplex"


def test_kiosk_speaker() -> None:
    p = load_profile("kiosk-speaker")
    assert p.open_order == "output_first"
    assert p.input.device == p.output.device == "default"
    assert p.button.kind == "none"
    assert p.echo_policy == "half_duplex"


def test_virtual_file() -> None:
    p = load_profile("virtual-file")
    assert p.backend == "file"
    assert p.file == FileSpec(
        source_wav="var/fixtures/speech16k.wav", sink_wav="var/out/reply.wav", realtime=True
    )


def test_profiles_do_no_device_io() -> None:
    code = "import sys, json, voicegw.profiles; print(json.dumps('pyaudio' in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) is False


# ---------------------------------------------------------------- lookup


def test_name_and_path_load_the_same_profile() -> None:
    by_name = load_profile("usb-generic")
    assert load_profile(REPO_DEVICES / "usb-generic.toml") == by_name
    assert load_profile(str(REPO_DEVICES / "usb-generic.toml")) == by_name


def test_an_unknown_name_lists_the_known_profiles() -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile("respeaker-4mic")
    message = str(caught.value)
    assert "'respeaker-4mic'" in message
    assert "respeaker-2mic" in message and "usb-generic" in message


def test_search_path_first_match_wins(tmp_path: Path) -> None:
    local, shipped = tmp_path / "local", tmp_path / "shipped"
    local.mkdir()
    shipped.mkdir()
    (local / "usb-generic.toml").write_text('description = "local override"\n')
    (shipped / "usb-generic.toml").write_text('description = "shipped"\n')
    (shipped / "other.toml").write_text("")
    p = load_profile("usb-generic", [local, shipped])
    assert p.description == "local override"
    assert p.name == "usb-generic"  # defaults to the file name
    assert list_profiles([local, shipped, tmp_path / "absent"]) == ["other", "usb-generic"]


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_profile(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[input\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(broken)
    bad = tmp_path / "bad.toml"
    bad.write_text("[input]\nrate = 12345\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(bad)
    assert str(bad) in str(caught.value)
    assert caught.value.key == "input.rate"


def test_profiles_are_frozen() -> None:
    p = load_profile("usb-generic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.period_ms = 10.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.input.rate = 16000  # type: ignore[misc]


# ---------------------------------------------------------------- validation


def test_defaults() -> None:
    p = parse("")
    assert p.name == "test"
    assert (p.input.device, p.input.rate, p.input.channels) == ("default", 0, 1)
    assert p.button.kind == "none" and p.file is None
    assert p.echo_policy == "auto"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 'red'", "colour"),
        ("[input]\nchanel = 1", "input.chanel"),
        ("[button]\ngpio_pin = 17", "button.gpio_pin"),
        ("[file]\nsource = 'a.wav'", "file.source"),
    ],
)
def test_unknown_keys_are_named(text: str, key: str) -> None:
    err = config_error(text)
    assert err.key == key
    assert "unknown key" in str(err) and key in str(err)


def test_an_unknown_key_lists_the_known_ones() -> None:
    message = str(config_error("[input]\nchanel = 1"))
    assert "channel" in message and "gain_db" in message


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[input]\ndevice = 5", "input.device", "expected a string"),
        ("[output]\ndevice = ['USB Audio']", "output.device", "expected a string"),
        ("[input]\ndevice = ''", "input.device", "not a device pattern"),
        ("[input]\ndevice = 'seeed-2mic||seeed2micvoicec'", "input.device", "not a device pattern"),
        ("[input]\nrate = 12345", "input.rate", "must be 0 or one of"),
        ("[input]\nrate = 16000.0", "input.rate", "expected an integer"),
        ("[input]\nchannels = 0", "input.channels", "must be 1..16"),
        ("[input]\nchannels = 2\nchannel = 2", "input.channel", "must be -1..1"),
        ("[input]\ngain_db = 100", "input.gain_db", "dB"),
        ("[output]\nchannels = 9", "output.channels", "must be 1..8"),
        ("period_ms = '20'", "period_ms", "expected a number"),
        ("period_ms = 1", "period_ms", "must be 5..200 ms"),
        ("echo_policy = 'loud'", "echo_policy", "is not one of"),
        ("echo_policy = 'full_duplex'", "echo_policy", "hardware_aec"),
        ("hardware_aec = 'yes'", "hardware_aec", "true/false"),
        ("open_order = 'both'", "open_order", "is not one of"),
        ("name = 'my card'", "name", "not a profile name"),
        ("input = 3", "input", "must be a table"),
        ("[button]\nkind = 'gpio'", "button.pin", "required"),
        ("[button]\nkind = 'gpio'\npin = 40", "button.pin", "must be 0..27"),
        ("[button]\nkind = 'gpio'\npin = 17\nactive_low = 1", "button.active_low", "true/false"),
        ("[button]\nbounce_ms = -1", "button.bounce_ms", "must be 0..1000"),
        ("[button]\nkind = 'evdev'", "button.device", "not a device pattern"),
        ("[button]\nkey = 'space'", "button.key", "KEY_SPACE"),
        ("[button]\nkey = 1000", "button.key", "must be 0..767"),
        ("[button]\nkind = 'joystick'", "button.kind", "is not one of"),
        ("backend = 'file'", "file", "needs a [file] table"),
        ("backend = 'file'\n[file]\nsource_wav = 'a.wav'", "file.sink_wav", "required"),
        ("[file]\nsource_wav = 'a.wav'\nsink_wav = 'b.wav'", "file", "only for backend"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str, words: str) -> None:
    err = config_error(text)
    assert err.key == key
    assert words in str(err)
    assert str(err).startswith(f"{key}: ")


def test_valid_variants() -> None:
    p = parse(
        """
        echo_policy = "full_duplex"
        hardware_aec = true
        [input]
        device = "*USB*(hw:1,0)|Jabra"
        channels = 4
        channel = -1
        [button]
        kind = "evdev"
        device = "/dev/input/by-id/usb-foot-switch-event-kbd"
        key = 164
        grab = true
        """
    )
    assert p.input.channel == -1
    assert (p.button.kind, p.button.key, p.button.grab) == ("evdev", 164, True)
    f = parse(
        "backend = 'file'\n[file]\nsource_wav = 'a.wav'\nsink_wav = 'b.wav'\nsink_rate = 24000"
    )
    assert f.file is not None and f.file.sink_rate == 24000


@pytest.mark.parametrize(
    ("policy", "aec", "mode", "expected"),
    [
        ("auto", False, "server_vad", "half_duplex"),
        ("auto", False, "ptt", "full_duplex"),
        ("auto", True, "server_vad", "full_duplex"),
        ("duck", False, "ptt", "duck"),
    ],
)
def test_echo_policy_for_a_turn_mode(policy: str, aec: bool, mode: str, expected: str) -> None:
    data: dict[str, Any] = {"echo_policy": policy, "hardware_aec": aec}
    assert parse_profile(data, name="x").echo_policy_for(mode) == expected


def test_echo_policy_for_an_unknown_turn_mode() -> None:
    with pytest.raises(ConfigError):
        parse("").echo_policy_for("telepathy")
