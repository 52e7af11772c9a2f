"""configs/voicegw.service and scripts/install-service: keys, systemd-analyze, dry runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from voicegw import cli
from voicegw.config import load_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "configs" / "voicegw.service"
INSTALLER = REPO / "scripts" / "install-service"
EXAMPLE = REPO / "configs" / "voicegw.example.toml"
EXEC = "/opt/voicegw/.venv/bin/voicegw"
CREDENTIAL = "/run/credentials/voicegw.service/coze-token"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> key -> every value assigned, in order (unit files repeat keys)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        assert not line.endswith("\\"), "continuation lines are not used"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        section[key.strip()].append(value.strip())
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


# ------------------------------------------------------------------ the unit file


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("RestartSec", "2"),
        ("User", "voicegw"),
        ("Group", "voicegw"),
        ("ExecStart", f"{EXEC} run --config /etc/voicegw/voicegw.toml"),
        ("LoadCredential", "coze-token:/etc/voicegw/token"),
        ("StateDirectory", "voicegw"),
        ("RuntimeDirectory", "voicegw"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("PrivateDevices", "no"),
        ("DevicePolicy", "closed"),
    ],
)
def test_required_service_settings(unit: Unit, key: str, value: str) -> None:
    assert one(unit, "Service", key) == value


def test_exit_statuses_that_restarting_cannot_fix_are_not_restarted(unit: Unit) -> None:
    statuses = {int(s) for s in one(unit, "Service", "RestartPreventExitStatus").split()}
    assert statuses == {cli.EXIT_CONFIG, cli.EXIT_FATAL_AUTH} == {2, 4}


def test_supplementary_groups_cover_audio_gpio_and_input(unit: Unit) -> None:
    assert one(unit, "Service", "SupplementaryGroups").split() == ["audio", "gpio", "input"]


def test_environment_is_unbuffered_and_carries_no_token(unit: Unit) -> None:
    env = " ".join(unit["Service"]["Environment"]).split()
    assert "PYTHONUNBUFFERED=1" in env
    assert not any(v.startswith("COZE_API_TOKEN") for v in env)
    assert "EnvironmentFile" not in unit["Service"]


def test_network_families_are_restricted(unit: Unit) -> None:
    families = set(one(unit, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}


def test_devices_allowed_are_sound_input_and_gpio_only(unit: Unit) -> None:
    allowed = unit["Service"]["DeviceAllow"]
    assert "char-alsa rw" in allowed
    assert "char-input r" in allowed
    assert any(a.split()[0] in ("char-gpiochip", "/dev/gpiochip0") for a in allowed)
    assert len(allowed) == 3


def test_nothing_is_writable_beyond_state_and_runtime(unit: Unit) -> None:
    assert "ReadWritePaths" not in unit["Service"]
    assert one(unit, "Service", "WorkingDirectory") == "/var/lib/voicegw"


def test_write_xor_execute_is_left_off_on_purpose(unit: Unit) -> None:
    """PyAV/FFmpeg and libffi callbacks need W+X pages; the comment says why."""
    assert "MemoryDenyWriteExecute" not in unit["Service"]
    assert "MemoryDenyWriteExecute=yes: libffi" in UNIT.read_text(encoding="utf-8")


def test_no_pulseaudio_or_pipewire_dependency(unit: Unit) -> None:
    for section in unit.values():
        for key, values in section.items():
            for value in values:
                text = f"{key}={value}".lower()
                assert "pulse" not in text and "pipewire" not in text, text


def test_unit_ordering_and_install(unit: Unit) -> None:
    assert "network-online.target" in one(unit, "Unit", "Wants").split()
    assert "network-online.target" in one(unit, "Unit", "After").split()
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_credential_path_the_config_names_matches_the_unit(unit: Unit) -> None:
    name, _, _ = one(unit, "Service", "LoadCredential").partition(":")
    assert f"/run/credentials/{UNIT.name}/{name}" == CREDENTIAL
    assert f'token_file = "{CREDENTIAL}"' in UNIT.read_text(encoding="utf-8")
    assert f"CREDENTIAL={CREDENTIAL}\n" in INSTALLER.read_text(encoding="utf-8")


def test_the_installed_config_loads_with_the_credential_token_file(tmp_path: Path) -> None:
    """What install-service writes: the example config with token_file set by sed."""
    text, count = re.subn(
        r'^token_file = ""',
        f'token_file = "{CREDENTIAL}"',
        EXAMPLE.read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    assert count == 1
    path = tmp_path / "voicegw.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path).cloud.token_file == CREDENTIAL


# ------------------------------------------------------------------ systemd-analyze


def _verify(unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "voicegw"
    exe.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    exe.chmod(0o755)
    path = directory / "voicegw.service"
    path.write_text(unit_text.replace(EXEC, os.fspath(exe)), encoding="utf-8")
    return subprocess.run(
        [analyze, "verify", "--man=no", os.fspath(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed; only the key checks above ran",
)
def test_systemd_analyze_verify_reports_nothing(tmp_path: Path) -> None:
    done = _verify(UNIT.read_text(encoding="utf-8"), tmp_path / "ok")
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, output
    assert output == ""


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed; only the key checks above ran",
)
def test_systemd_analyze_verify_can_fail(tmp_path: Path) -> None:
    broken = UNIT.read_text(encoding="utf-8").replace("NotifyAccess=main", "NotifyAcess=main")
    done = _verify(broken, tmp_path / "broken")
    assert "NotifyAcess" in done.stdout + done.stderr


# ------------------------------------------------------------------ install-service


def _state(prefix: Path | None = None) -> dict[str, object]:
    """What a real install would change: files, directories, the user."""
    user = subprocess.run(["getent", "passwd", "voicegw"], capture_output=True, check=False)
    paths = [
        Path("/etc/voicegw"),
        Path("/etc/systemd/system/voicegw.service"),
        Path("/opt/voicegw"),
    ]
    if prefix is not None:
        paths.append(prefix)
    return {
        "user": user.returncode == 0,
        **{os.fspath(p): (p.exists(), p.stat().st_mtime_ns if p.exists() else 0) for p in paths},
    }


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", os.fspath(INSTALLER), *args], capture_output=True, text=True, timeout=120
    )


def test_installer_is_executable_bash_without_syntax_errors() -> None:
    assert os.access(INSTALLER, os.X_OK)
    assert INSTALLER.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", os.fspath(INSTALLER)], check=True, timeout=60)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_installer_passes_shellcheck() -> None:
    subprocess.run(["shellcheck", os.fspath(INSTALLER)], check=True, timeout=60)


def test_dry_run_lists_every_action_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "srv" / "voicegw"
    before = _state(prefix)
    done = install("--dry-run", "--prefix", os.fspath(prefix))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "dry run" in out
    assert ("+ useradd --system" in out) or ("user voicegw exists" in out)
    assert f"installing {REPO} into {prefix}" in out
    assert f"+ install -d -m 0755 -o root -g root {prefix}" in out
    assert f"{prefix}/.venv/bin/python -m pip install" in out
    assert "+ install -d -m 0750 -o root -g voicegw /etc/voicegw" in out
    assert ("+ write /etc/voicegw/voicegw.toml (mode 0640, owner root:voicegw)" in out) or (
        "keeping /etc/voicegw/voicegw.toml" in out
    )
    assert ("+ write /etc/voicegw/token (mode 0600, owner root:root)" in out) or (
        "keeping /etc/voicegw/token" in out
    )
    assert "+ write /etc/systemd/system/voicegw.service (mode 0644, owner root:root)" in out
    assert f"ExecStart={prefix}/.venv/bin/voicegw run --config /etc/voicegw/voicegw.toml" in out
    assert "+ systemctl daemon-reload" in out
    assert "+ systemctl enable voicegw.service" in out
    assert out.index("daemon-reload") < out.index("enable voicegw.service")
    assert _state(prefix) == before


def test_dry_run_with_the_default_prefix_changes_nothing() -> None:
    before = _state()
    done = install("--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"ExecStart={EXEC} run" in done.stdout
    assert _state() == before


def test_dry_run_in_place_uses_the_checkout() -> None:
    before = _state()
    done = install("--dry-run", f"--prefix={REPO}")
    assert done.returncode == 0, done.stderr
    assert f"running in place from {REPO}" in done.stdout
    assert "rsync" not in done.stdout and "tar -C" not in done.stdout
    assert f"ExecStart={REPO}/.venv/bin/voicegw run" in done.stdout
    assert _state() == before


def test_dry_run_keeps_only_groups_that_exist() -> None:
    done = install("--dry-run")
    line = next(
        (ln for ln in done.stdout.splitlines() if ln.strip().startswith("SupplementaryGroups=")),
        "",
    )
    for group in ("audio", "gpio", "input"):
        exists = subprocess.run(["getent", "group", group], capture_output=True).returncode == 0
        assert (group in line.split("=", 1)[-1].split()) == exists, (group, line)
        if not exists:
            assert f"group {group} does not exist here" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "/home/pi/voicegw"], "ProtectHome=yes"),
        (["--prefix", "/root/voicegw"], "ProtectHome=yes"),
        (["--prefix", "relative/dir"], "must be an absolute path"),
        (["--prefix", "/"], "must not be /"),
        (["--prefix", "/opt/voice gw"], "characters the unit file cannot carry"),
        (["--prefix"], "--prefix needs a directory"),
    ],
)
def test_bad_prefixes_are_refused_before_anything_happens(args: list[str], message: str) -> None:
    before = _state()
    done = install("--dry-run", *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stdout == ""
    assert _state() == before


def test_unknown_arguments_print_usage() -> None:
    done = install("--frobnicate")
    assert done.returncode == 2
    assert "unknown argument --frobnicate" in done.stderr
    assert "usage:" in done.stderr


def test_help_describes_the_options() -> None:
    done = install("--help")
    assert done.returncode == 0
    for option in ("--prefix DIR", "--extras LIST", "--dry-run"):
        assert option in done.stdout


def test_a_real_run_without_root_is_refused() -> None:
    before = _state()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is not installed to drop privileges")
        drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        # Never run the installer for real as root: make sure the privileges really drop.
        uid = subprocess.run([*drop, "id", "-u"], capture_output=True, text=True, timeout=60)
        if uid.stdout.strip() != "65534":
            pytest.skip(f"setpriv could not drop root privileges: {uid.stderr.strip()}")
        cmd = [*drop, "bash"]
    else:
        cmd = ["bash"]
    done = subprocess.run([*cmd, os.fspath(INSTALLER)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "must be run as root" in done.stderr
    assert _state() == before


@pytest.mark.skipif(
    os.geteuid() != 0 or Path("/run/systemd/system").exists(),
    reason="needs root on a machine where systemd is not running (a real install would proceed)",
)
def test_a_real_run_without_systemd_is_refused() -> None:
    before = _state()
    done = install()
    assert done.returncode == 1
    assert "systemd is not running" in done.stderr or "systemctl not found" in done.stderr
    assert done.stdout == ""
    assert _state() == before
