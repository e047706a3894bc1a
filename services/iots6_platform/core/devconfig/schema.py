"""The device configuration keys, written once as data: defaults, validation, merge, diff and JSON Schema.

What the firmware applies live.  This table is the source of truth for the keys the server may send; the firmware
mirrors it in ``firmware/lib/iots6/configkeys.py`` and ``tests/firmware/test_config_mirror.py`` proves the two
accept exactly the same values.  A stored document (fleet defaults or a device's overrides) is *sparse*:
it holds only keys an operator set.  The effective configuration is ``DEFAULTS < fleet < device``, merged by
key, nested objects (``sensors``, ``labels``) entry by entry.  :func:`json_schema` turns :data:`KEYS` into the
JSON Schema used by the config server's OpenAPI document.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from iots6_platform.core.contract import MAX_JSON_DEPTH, json_depth
from iots6_platform.core.errors import InvalidInput

#: Printable text, no control characters (jsonb cannot store NUL; OLED and terminals choke on the rest).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
#: A DNS hostname (RFC 1123 labels); the 253-character limit is a separate maxLength.
HOSTNAME_PATTERN = (
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class Key:
    """One key. ``type``: integer, boolean, string, object (fixed ``fields``) or map (string -> string)."""

    type: str
    doc: str
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[Any, ...] | None = None
    max_length: int | None = None
    pattern: str | None = None
    fields: dict[str, Key] = field(default_factory=dict)
    max_entries: int | None = None
    key_max_length: int | None = None


CLIMATE_SENSORS = ("auto", "bme280", "sht31", "dht22", "internal", "none")

#: Every key the firmware understands. Defaults here are the built-in layer under the fleet defaults.
KEYS: dict[str, Key] = {
    "telemetry_interval_s": Key("integer", "seconds between telemetry readings", 60, 5, 3600),
    "config_poll_s": Key(
        "integer",
        "seconds between config fetches when no change notice arrives (a notice is fetched at once)",
        3600,
        60,
        86400,
    ),
    "motion_cooldown_s": Key("integer", "seconds after a motion event before the next is reported", 30, 0, 3600),
    "switch_debounce_ms": Key("integer", "switch/reed debounce time in milliseconds", 50, 5, 2000),
    "sensors": Key(
        "object",
        "which sensors to use",
        fields={
            "climate": Key("string", "climate sensor; `auto` probes the I2C bus", "auto", enum=CLIMATE_SENSORS),
            "bme280_address": Key(
                "integer",
                "preferred BME280 I2C address, 118 (0x76) or 119 (0x77); the other one is probed too, so this only "
                "chooses when both answer",
                118,
                enum=(118, 119),
            ),
        },
    ),
    "temperature_unit": Key("string", "unit shown on the OLED (storage is always °C)", "C", enum=("C", "F")),
    "oled_enabled": Key("boolean", "drive the OLED display", True),
    "oled_brightness": Key("integer", "OLED contrast", 255, 0, 255),
    "led_enabled": Key("boolean", "use the status LED", True),
    "ntp_server": Key("string", "NTP server hostname", "pool.ntp.org", max_length=253, pattern=HOSTNAME_PATTERN),
    "labels": Key(
        "map",
        "free-form labels; conventional keys `name` and `location`",
        {},
        max_entries=16,
        key_max_length=32,
        max_length=128,
    ),
}


class ConfigInvalid(InvalidInput):
    """A configuration document that breaks the schema; ``key`` names the offending (dotted) key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _default_of(key: Key) -> Any:
    if key.type == "object":
        return {name: sub.default for name, sub in key.fields.items()}
    return copy.deepcopy(key.default)


#: The built-in defaults, a complete configuration.
DEFAULTS: dict[str, Any] = {name: _default_of(key) for name, key in KEYS.items()}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _check_value(path: str, key: Key, value: Any, partial: bool) -> None:
    got = _type_name(value)
    if key.type == "integer":
        # bool is an int subclass in Python; JSON true is not a number of seconds.
        if value.__class__ is not int:
            raise ConfigInvalid(path, f"`{path}` must be an integer, got {got}.")
        if key.minimum is not None and not key.minimum <= value <= key.maximum:
            raise ConfigInvalid(path, f"`{path}` must be between {key.minimum} and {key.maximum}, got {value}.")
    elif key.type == "boolean":
        if value is not True and value is not False:
            raise ConfigInvalid(path, f"`{path}` must be true or false, got {got}.")
    elif key.type == "string":
        if not isinstance(value, str):
            raise ConfigInvalid(path, f"`{path}` must be a string, got {got}.")
        if key.max_length is not None and len(value) > key.max_length:
            raise ConfigInvalid(path, f"`{path}` must be at most {key.max_length} characters long.")
        if key.pattern is not None and not re.fullmatch(key.pattern, value):
            raise ConfigInvalid(path, f"`{path}` must be a hostname such as pool.ntp.org, got {value!r}.")
    elif key.type == "object":
        if not isinstance(value, dict):
            raise ConfigInvalid(path, f"`{path}` must be an object, got {got}.")
        _check_document(value, key.fields, path + ".", partial)
        return
    elif key.type == "map":
        if not isinstance(value, dict):
            raise ConfigInvalid(path, f"`{path}` must be an object of strings, got {got}.")
        if len(value) > key.max_entries:
            raise ConfigInvalid(path, f"`{path}` may hold at most {key.max_entries} entries, got {len(value)}.")
        for name, item in value.items():
            if not 1 <= len(name) <= key.key_max_length or not re.fullmatch(TEXT_PATTERN, name):
                raise ConfigInvalid(
                    f"{path}.{name}",
                    f"`{path}` keys must be 1 to {key.key_max_length} printable characters, got {name!r}.",
                )
            if not isinstance(item, str) or len(item) > key.max_length or not re.fullmatch(TEXT_PATTERN, item):
                raise ConfigInvalid(
                    f"{path}.{name}",
                    f"`{path}.{name}` must be printable text of at most {key.max_length} characters.",
                )
        return
    if key.enum is not None and value not in key.enum:
        allowed = ", ".join(json.dumps(v) for v in key.enum)
        raise ConfigInvalid(path, f"`{path}` must be one of {allowed}, got {json.dumps(value)}.")


def _check_document(doc: dict[str, Any], keys: dict[str, Key], prefix: str, partial: bool) -> None:
    for name, value in doc.items():
        if name not in keys:
            known = ", ".join(sorted(keys))
            raise ConfigInvalid(prefix + name, f"`{prefix}{name}` is not a configuration key; known keys: {known}.")
        _check_value(prefix + name, keys[name], value, partial)
    if not partial:
        missing = sorted(set(keys) - set(doc))
        if missing:
            raise ConfigInvalid(prefix + missing[0], f"`{prefix}{missing[0]}` is required.")


def validate(doc: Any, partial: bool = True) -> dict[str, Any]:
    """Check a document against :data:`KEYS`; ``partial`` allows missing keys (stored documents are sparse).

    Raises :class:`ConfigInvalid` naming the first offending key; returns ``doc`` unchanged otherwise.
    """
    if not isinstance(doc, dict):
        raise ConfigInvalid("", f"A configuration must be a JSON object, got {_type_name(doc)}.")
    _check_document(doc, KEYS, "", partial)
    return doc


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, objects merged recursively; neither argument is modified."""
    result = copy.deepcopy(base)
    for name, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = merge(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge, ``null`` removes a key. Returns a new document."""
    result = copy.deepcopy(target)
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict):
            current = result.get(name)
            result[name] = merge_patch(current if isinstance(current, dict) else {}, value)
            if not result[name] and name not in target:
                result.pop(name)  # patching an absent object with only removals leaves it absent
        else:
            result[name] = copy.deepcopy(value)
    return result


def effective(fleet: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The complete configuration of a device: defaults < fleet < overrides."""
    return merge(merge(DEFAULTS, fleet), overrides)


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in doc.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[prefix + name] = value
    return flat


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What changed, by dotted key: ``{"labels.location": {"old": None, "new": "lab"}}`` (None: absent)."""
    a, b = _flatten(old), _flatten(new)
    return {
        name: {"old": a.get(name), "new": b.get(name)}
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name) or (name in a) != (name in b)
    }


def key_type(path: str) -> str | None:
    """The type of a dotted key (``labels.location`` is a string), or None when it is not a key."""
    head, _, rest = path.partition(".")
    key = KEYS.get(head)
    if key is None:
        return None
    if not rest:
        return key.type
    if key.type == "map":
        return "string" if "." not in rest else None
    if key.type == "object" and rest in key.fields:
        return key.fields[rest].type
    return None


def parse_assignment(text: str) -> dict[str, Any]:
    """``key=value`` (dotted keys for nested objects) -> a merge patch.

    Values are JSON where valid, except that a string-typed key keeps the raw text; ``key=null`` removes it.
    """
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise InvalidInput(f"`{text}` is not key=value; write for example telemetry_interval_s=30.")
    kind = key_type(path)
    if kind is None:
        known = ", ".join(sorted(KEYS))
        raise ConfigInvalid(path, f"`{path}` is not a configuration key; known keys: {known}.")
    if raw == "null":
        value: Any = None
    elif kind == "string":
        value = raw
    else:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: the text itself
            value = raw
        if json_depth(value) > MAX_JSON_DEPTH:  # as deep as no key needs: the text itself, refused by validate
            value = raw
    parts = path.split(".")
    patch: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        patch = {part: patch}
    return patch


def _key_schema(key: Key, complete: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": key.doc}
    if key.type == "object":
        schema["type"] = "object"
        schema["properties"] = {name: _key_schema(sub, complete) for name, sub in key.fields.items()}
        schema["additionalProperties"] = False
        if complete:
            schema["required"] = list(key.fields)
        return schema
    if key.type == "map":
        schema.update(
            type="object",
            maxProperties=key.max_entries,
            propertyNames={"minLength": 1, "maxLength": key.key_max_length, "pattern": TEXT_PATTERN},
            additionalProperties={"type": "string", "maxLength": key.max_length, "pattern": TEXT_PATTERN},
        )
    else:
        schema["type"] = key.type
    if key.minimum is not None:
        schema["minimum"], schema["maximum"] = key.minimum, key.maximum
    if key.enum is not None:
        schema["enum"] = list(key.enum)
    if key.type == "string" and key.max_length is not None:
        schema["maxLength"] = key.max_length
    if key.pattern is not None:
        schema["pattern"] = key.pattern
    if key.type != "object":
        schema["default"] = _default_of(key)
    return schema


def json_schema(complete: bool = False) -> dict[str, Any]:
    """JSON Schema (2020-12) of a configuration; ``complete`` requires every key (an effective config)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _key_schema(key, complete) for name, key in KEYS.items()},
        "additionalProperties": False,
    }
    if complete:
        schema["required"] = list(KEYS)
    return schema
