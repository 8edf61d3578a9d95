"""``Settings``: a frozen dataclass of a job's settings, built once from its settings file, written back unchanged.

The workflow writes every job's ``settings/<name>.json`` from config (``tinyrs.config.workflow_settings``, checked
by the schema); the commands read them back with ``from_file``/``from_dict``, which refuse an unknown key, a missing
key or a value of the wrong type, naming the file and the key: the file may have been edited by hand, or written by
another version. ``to_dict`` gives back the very dict read, so the settings file, its hash
(``runtime.run_fingerprint``, the eval's resume fingerprint) and the model manifest's ``config_sha256`` do not
change. Lists and mappings are kept as read (the objects are frozen, their contents are not copied): ``to_dict``
must give equal JSON.

A field whose type is another ``Settings`` class is a section (a nested mapping; ``X | None``: a mapping or null).
A field with a default is a key the file may leave out (``EvalSettings.model``: only a published model's column
names one). ``to_dict`` leaves it out when it holds the default, so ``from_dict`` refuses the default written out:
the dict read would not come back.
"""
from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from typing import Any


class SettingsError(ValueError):
    """A settings file that does not hold the settings of its kind."""


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON is of the annotated type (an int is a float; a bool is not a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(key, args[0]) and _conforms(item, args[1])
                                               for key, item in value.items())
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if hint is float else hint)


class Settings:
    """``from_dict``/``to_dict`` for a frozen dataclass of settings; nested dataclasses are sections."""

    def to_dict(self) -> dict:
        return {field.name: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)
                if not _optional(field) or getattr(self, field.name) != field.default}

    @classmethod
    def from_file(cls, path: str | os.PathLike):
        """Read the settings file ``path`` (JSON) and build from it; errors name the file."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as err:
            raise SettingsError(f"{path}: not valid JSON: {err}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str, prefix: str = ""):
        """Build from ``data`` (read from the file ``source``; ``prefix``: the dotted key of a nested section)."""
        where = f"{source}: key '{prefix.rstrip('.')}'" if prefix else source
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = [field for field in dataclasses.fields(cls) if field.name in data or not _optional(field)]
        problems = [f"unknown key '{prefix}{key}'" for key in data if key not in hints]
        problems += [f"missing key '{prefix}{field.name}'" for field in fields if field.name not in data]
        problems += [f"key '{prefix}{field.name}': {field.default!r} is its default: leave the key out"
                     for field in fields if _optional(field) and data.get(field.name) == field.default]
        if problems:
            raise SettingsError(f"{source}: {'; '.join(problems)}")
        values = {}
        for name in (field.name for field in fields):
            hint, value = hints[name], data[name]
            section = _section(hint)
            if section is not None and (value is not None or not _conforms(None, hint)):
                values[name] = section.from_dict(value, source, f"{prefix}{name}.")
            elif _conforms(value, hint):
                values[name] = value
            else:
                raise SettingsError(f"{source}: key '{prefix}{name}': {value!r} is not of type {_type_name(hint)}")
        return cls(**values)


def _section(hint: Any) -> type[Settings] | None:
    """The ``Settings`` class of a section's type (``X`` or ``X | None``), else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, Settings):
            return candidate
    return None


def _optional(field: dataclasses.Field) -> bool:
    return field.default is not dataclasses.MISSING


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Settings) else value


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)
