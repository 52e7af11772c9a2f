"""One table-driven codec between frozen dataclasses and JSON-ready dicts.

Every protocol object (events and the shared objects inside them) is a frozen, slotted,
keyword-only dataclass. This module turns such a class into a *plan* once, from its type hints
and field metadata, and then uses the plan to decode and encode instances. There is no
hand-written ``to_dict``/``from_dict`` pair anywhere in the protocol package.

What a plan checks while decoding (each failure raises :class:`RemoteProtocolError` naming the
dotted field path):

* JSON types: ``str``, ``int`` (not ``bool``), ``float`` (ints accepted), ``bool``, objects,
  arrays, and ``bytes`` fields carried as standard base64 with padding (spec 1.5).
* ``Literal[...]`` annotations: the documented enums.
* field metadata from :func:`spec_field`: ``lo``/``hi`` ranges, ``choices`` for numbers,
  ``max_items`` for arrays, ``min_bytes``/``max_bytes`` for UTF-8 string lengths, ``required``.
* an optional ``_check(self, path)`` method on the class, for rules across fields.

``None`` on the wire (JSON ``null``) decodes to ``None`` for optional fields: the service sends
``"completed_at":null`` in places (spec 2.2.8). Encoding omits ``None`` fields.

Unknown keys are never dropped: each class has an ``extra`` field that keeps them, encoding writes
them back, and :func:`unknown_paths` lists them so callers can report them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, Union

from ..errors import RemoteProtocolError

__all__ = [
    "EXTRA",
    "decode_object",
    "encode_object",
    "merge",
    "spec_field",
    "unknown_paths",
]

#: Name of the field that keeps unknown keys on every schema class.
EXTRA = "extra"

T = TypeVar("T")

_Decoder = Callable[[Any, str], Any]
_Encoder = Callable[[Any], Any]


def spec_field(
    default: Any = None,
    *,
    wire: str | None = None,
    required: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[Any, ...] | None = None,
    max_items: int | None = None,
    min_bytes: int | None = None,
    max_bytes: int | None = None,
) -> Any:
    """Declare a protocol field with its documented constraints.

    Args:
        default: value when the key is absent (``None`` means "not sent").
        wire: the JSON key when it differs from the attribute name.
        required: absent or ``null`` is an error.
        lo, hi: inclusive numeric range.
        choices: allowed numeric values (string enums use ``Literal`` instead).
        max_items: longest allowed array.
        min_bytes, max_bytes: inclusive bounds on a string's UTF-8 length.
    """
    meta = {
        "wire": wire,
        "required": required,
        "lo": lo,
        "hi": hi,
        "choices": choices,
        "max_items": max_items,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
    }
    return dataclasses.field(default=default, metadata=meta)


class _Plan:
    __slots__ = ("by_wire", "cls", "fields")

    def __init__(
        self,
        cls: type[Any],
        fields: list[tuple[str, str, _Decoder, _Encoder, bool]],
    ) -> None:
        self.cls = cls
        # (attribute, wire key, decoder, encoder, required)
        self.fields = fields
        self.by_wire = {wire: (attr, dec, req) for attr, wire, dec, _, req in fields}


_PLANS: dict[type[Any], _Plan] = {}


def _fail(path: str, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, path=path or "data")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) != len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # noqa: UP007 - runtime construction
    return tp, False


def _range_checks(meta: Mapping[str, Any]) -> Callable[[Any, str], None] | None:
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    max_items = meta.get("max_items")
    min_bytes, max_bytes = meta.get("min_bytes"), meta.get("max_bytes")
    if all(v is None for v in (lo, hi, choices, max_items, min_bytes, max_bytes)):
        return None

    def check(value: Any, path: str) -> None:
        if choices is not None and value not in choices:
            allowed = ", ".join(str(c) for c in choices)
            raise _fail(path, f"{value!r} is not one of {allowed}")
        if lo is not None and value < lo:
            raise _fail(path, f"{value!r} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise _fail(path, f"{value!r} is above the maximum {hi}")
        if max_items is not None and len(value) > max_items:
            raise _fail(path, f"has {len(value)} items, at most {max_items} allowed")
        if min_bytes is not None or max_bytes is not None:
            n = len(value.encode("utf-8"))
            if min_bytes is not None and n < min_bytes:
                raise _fail(path, f"is {n} bytes long, at least {min_bytes} required")
            if max_bytes is not None and n > max_bytes:
                raise _fail(path, f"is {n} bytes long, at most {max_bytes} allowed")

    return check


def _identity(value: Any) -> Any:
    return value


def _build(tp: Any) -> tuple[_Decoder, _Encoder]:
    """Return (decoder, encoder) for one type annotation (without ``None``)."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return (lambda v, p: v), _identity
    if tp is str:

        def dec_str(v: Any, p: str) -> str:
            if type(v) is not str:
                raise _fail(p, f"expected a string, got {_type_name(v)}")
            return v

        return dec_str, _identity
    if tp is bool:

        def dec_bool(v: Any, p: str) -> bool:
            if type(v) is not bool:
                raise _fail(p, f"expected a boolean, got {_type_name(v)}")
            return v

        return dec_bool, _identity
    if tp is int:

        def dec_int(v: Any, p: str) -> int:
            if type(v) is not int:
                # 4000.0 is an integer; 1e19 (a number too large for JSON's int64) is not, and
                # accepting it would make the event impossible to encode again.
                if type(v) is float and v.is_integer() and -(2**63) <= v < 2**63:
                    return int(v)
                raise _fail(p, f"expected an integer, got {_type_name(v)}")
            return v

        return dec_int, _identity
    if tp is float:

        def dec_float(v: Any, p: str) -> float:
            if type(v) is float:
                return v
            if type(v) is int:
                return float(v)
            raise _fail(p, f"expected a number, got {_type_name(v)}")

        return dec_float, _identity
    if tp is bytes:

        def dec_b64(v: Any, p: str) -> bytes:
            if type(v) is not str:
                raise _fail(p, f"expected base64 text, got {_type_name(v)}")
            try:
                return base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raise _fail(p, "is not valid base64 (standard alphabet, padded)") from None

        def enc_b64(v: bytes) -> str:
            return base64.b64encode(v).decode("ascii")

        return dec_b64, enc_b64
    if origin is Literal:
        allowed = typing.get_args(tp)
        shown = ", ".join(repr(a) for a in allowed)

        def dec_lit(v: Any, p: str) -> Any:
            if v not in allowed or type(v) is bool:
                raise _fail(p, f"{v!r} is not one of {shown}")
            return v

        return dec_lit, _identity
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported, got {tp}")
        item_dec, item_enc = _build(args[0])

        def dec_tuple(v: Any, p: str) -> tuple[Any, ...]:
            if type(v) is not list:
                raise _fail(p, f"expected an array, got {_type_name(v)}")
            return tuple(item_dec(x, f"{p}[{i}]") for i, x in enumerate(v))

        def enc_tuple(v: tuple[Any, ...]) -> list[Any]:
            return [item_enc(x) for x in v]

        return dec_tuple, enc_tuple
    if origin in (dict, Mapping) or tp is dict:
        args = typing.get_args(tp)
        val_dec, val_enc = _build(args[1]) if args else _build(Any)

        def dec_map(v: Any, p: str) -> dict[str, Any]:
            if type(v) is not dict:
                raise _fail(p, f"expected an object, got {_type_name(v)}")
            return {k: val_dec(x, f"{p}.{k}") for k, x in v.items()}

        def enc_map(v: Mapping[str, Any]) -> dict[str, Any]:
            return {k: val_enc(x) for k, x in v.items()}

        return dec_map, enc_map
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        cls = tp

        def dec_obj(v: Any, p: str) -> Any:
            return decode_object(cls, v, p)

        return dec_obj, encode_object
    raise TypeError(f"unsupported protocol field type {tp!r}")


def _plan(cls: type[Any]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, str, _Decoder, _Encoder, bool]] = []
    for f in dataclasses.fields(cls):
        if f.name == EXTRA or not f.init:
            continue
        meta = f.metadata
        if meta.get("envelope"):
            continue
        tp, _optional = _strip_optional(hints[f.name])
        dec, enc = _build(tp)
        check = _range_checks(meta)
        if check is not None:
            dec = _with_check(dec, check)
        wire = meta.get("wire") or f.name
        fields.append((f.name, wire, dec, enc, bool(meta.get("required"))))
    plan = _Plan(cls, fields)
    _PLANS[cls] = plan
    return plan


def _with_check(dec: _Decoder, check: Callable[[Any, str], None]) -> _Decoder:
    def checked(v: Any, p: str) -> Any:
        out = dec(v, p)
        check(out, p)
        return out

    return checked


def decode_object(cls: type[T], data: Any, path: str = "") -> T:
    """Decode a JSON object into ``cls``, validating every field.

    Raises:
        RemoteProtocolError: naming the dotted path of the first bad field.
    """
    if type(data) is not dict:
        raise _fail(path, f"expected an object, got {_type_name(data)}")
    plan = _plan(cls)
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    prefix = f"{path}." if path else ""
    for key, value in data.items():
        entry = plan.by_wire.get(key)
        if entry is None:
            extra[key] = value
            continue
        attr, dec, _req = entry
        if value is None:
            continue
        kwargs[attr] = dec(value, prefix + key)
    for attr, wire, _dec, _enc, required in plan.fields:
        if required and attr not in kwargs:
            raise _fail(prefix + wire, "is required")
    if extra:
        kwargs[EXTRA] = extra
    obj = cls(**kwargs)
    check = getattr(obj, "_check", None)
    if check is not None:
        check(path)
    return obj


def encode_object(obj: Any) -> dict[str, Any]:
    """Encode a schema dataclass instance as a JSON-ready dict (``None`` fields omitted)."""
    plan = _plan(type(obj))
    out: dict[str, Any] = {}
    for attr, wire, _dec, enc, _req in plan.fields:
        value = getattr(obj, attr)
        if value is not None:
            out[wire] = enc(value)
    extra = getattr(obj, EXTRA, None)
    if extra:
        for k, v in extra.items():
            out.setdefault(k, v)
    return out


def unknown_paths(obj: Any, path: str = "") -> list[str]:
    """List the dotted paths of every unknown key kept anywhere inside ``obj``."""
    found: list[str] = []
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return found
    prefix = f"{path}." if path else ""
    extra = getattr(obj, EXTRA, None)
    if extra:
        found.extend(prefix + k for k in extra)
    for f in dataclasses.fields(obj):
        if f.name == EXTRA or f.metadata.get("envelope"):
            continue
        value = getattr(obj, f.name)
        wire = f.metadata.get("wire") or f.name
        if dataclasses.is_dataclass(value):
            found.extend(unknown_paths(value, prefix + wire))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    found.extend(unknown_paths(item, f"{prefix}{wire}[{i}]"))
    return found


def merge(base: T, update: T) -> T:
    """Deep-merge two instances of one schema class: ``update``'s non-``None`` fields win.

    Nested schema objects merge field by field; arrays, maps and scalars are replaced whole.
    This is the INFERRED semantics of a repeated ``chat.update`` (spec 2.1): only the fields
    a client sends change.
    """
    if base is None:
        return update
    if update is None:
        return base
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(base):  # type: ignore[arg-type]
        new = getattr(update, f.name)
        if f.name == EXTRA:
            if new:
                changes[EXTRA] = {**getattr(base, EXTRA), **new}
            continue
        if new is None:
            continue
        old = getattr(base, f.name)
        if dataclasses.is_dataclass(new) and old is not None:
            changes[f.name] = merge(old, new)
        else:
            changes[f.name] = new
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]
