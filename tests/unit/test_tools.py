"""Device tools: built-ins work, allow-listed handlers run, everything else is refused."""

from __future__ import annotations

import json

import pytest

from voicegw.errors import ConfigError
from voicegw.protocol.objects import ToolCall, ToolCallFunction
from voicegw.tools import ToolBox


def call(name: str, arguments: str = "{}", cid: str = "call_1") -> ToolCall:
    return ToolCall(
        id=cid, type="function", function=ToolCallFunction(name=name, arguments=arguments)
    )


def shout(args: dict[str, object]) -> dict[str, object]:
    return {"said": str(args.get("text", "")).upper()}


def broken(args: dict[str, object]) -> str:
    raise RuntimeError("sensor unplugged")


def test_builtins_change_device_state() -> None:
    box = ToolBox()
    outs = box.run(
        [
            call("set_volume", '{"level": 40}', "a"),
            call("mute", '{"on": true}', "b"),
            call("device_status", "{}", "c"),
        ]
    )
    assert [o.tool_call_id for o in outs] == ["a", "b", "c"]
    assert box.state.volume == pytest.approx(0.4) and box.state.muted
    status = json.loads(outs[2].output)
    assert status == {"ok": True, "volume": 0.4, "muted": True}


def test_unknown_tool_is_refused_not_executed() -> None:
    box = ToolBox()
    out = json.loads(box.run([call("os.system", '{"cmd": "rm -rf /"}')])[0].output)
    assert out["ok"] is False and "not allowed" in out["error"]
    assert "set_volume" in out["allowed"]
    assert box.refused == 1


def test_allow_listed_handler_runs_and_failures_are_reported() -> None:
    box = ToolBox(allow={"shout": f"{__name__}:shout", "broken": f"{__name__}:broken"})
    ok, bad = box.run([call("shout", '{"text": "hi"}', "1"), call("broken", "{}", "2")])
    assert json.loads(ok.output) == {"said": "HI"}
    err = json.loads(bad.output)
    assert err["ok"] is False and "sensor unplugged" in err["error"]


@pytest.mark.parametrize("args", ["not json", "[1, 2]", '{"level": "loud"}', '{"level": 300}'])
def test_bad_arguments_get_a_clear_error(args: str) -> None:
    out = json.loads(ToolBox().run([call("set_volume", args)])[0].output)
    assert out["ok"] is False
    assert "set_volume" in out["error"] or "level" in out["error"]


def test_builtins_can_be_switched_off() -> None:
    out = json.loads(ToolBox(builtin=False).run([call("mute")])[0].output)
    assert out["ok"] is False


@pytest.mark.parametrize("target", ["nocolon", "no_such_module_xyz:f", f"{__name__}:missing"])
def test_bad_allow_list_entries_name_the_key(target: str) -> None:
    with pytest.raises(ConfigError) as info:
        ToolBox(allow={"x": target})
    assert info.value.key == "tools.allow.x"
