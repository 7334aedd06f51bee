"""Option defaults from a project's ``pyproject.toml`` and from ``CONFORM_*`` variables.

Every option of every command can be given three ways; the first found wins:

1. the command line;
2. an environment variable ``CONFORM_<OPTION>`` (``--api-key-env`` is ``CONFORM_API_KEY_ENV``), which
   applies to every command that has the option;
3. ``pyproject.toml``: ``[tool.conform.<command>]`` for one command, ``[tool.conform]`` for all, found in
   the working folder or the nearest folder above it that has one (as pytest finds its configuration).

A flag takes ``true``/``false`` (``1``/``0``, ``yes``/``no`` in a variable); a repeatable option takes a
TOML list (a variable gives one value). An unknown key in ``[tool.conform]`` is a usage error; a variable
that names no option is somebody else's and is left alone.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Setting", "SettingsError", "apply_settings", "find_pyproject"]

_PREFIX = "CONFORM_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class SettingsError(ValueError):
    """A configured value that cannot be used; the message names where it was set."""


@dataclass(frozen=True)
class Setting:
    """An option's value that came from the environment or pyproject.toml, not the command line."""

    option: str
    value: Any
    source: str

    def words(self) -> list[str]:
        """The command-line words that give the same value: what `reproduce` shows."""
        if self.value is True:
            return [self.option]
        if self.value is False or self.value is None:
            return []
        values = self.value if isinstance(self.value, list) else [self.value]
        return [word for value in values for word in (self.option, str(value))]


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """A command's options by their name without dashes (``api_key_env``), positionals and --help left out."""
    named: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public list of a parser's actions
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            named[long[0][2:].replace("-", "_")] = action
    return named


def _table(pyproject: Path | None, command: str) -> dict[str, tuple[Any, str]]:
    if pyproject is None:
        return {}
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{pyproject}: cannot read it: {error}") from None
    section = document.get("tool", {}).get("conform", {})
    if not isinstance(section, dict):
        raise SettingsError(f"{pyproject}: [tool.conform] is not a table")
    values: dict[str, tuple[Any, str]] = {
        key.replace("-", "_"): (value, f"{pyproject} [tool.conform]")
        for key, value in section.items()
        if not isinstance(value, dict)
    }
    own = section.get(command, {})
    if not isinstance(own, dict):
        raise SettingsError(f"{pyproject}: [tool.conform.{command}] is not a table")
    for key, value in own.items():
        values[key.replace("-", "_")] = (value, f"{pyproject} [tool.conform.{command}]")
    return values


def _flag(value: Any, source: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise SettingsError(f"{source}: {name} is a flag: give true or false, not {value!r}")


def _convert(action: argparse.Action, value: Any, source: str, name: str) -> Any:
    if action.nargs == 0:  # store_true, store_const
        on = _flag(value, source, name)
        return action.const if on else action.default
    many = isinstance(action, argparse._AppendAction)
    items = value if isinstance(value, list) and many else [value]
    if isinstance(value, list) and not many:
        raise SettingsError(f"{source}: {name} takes one value, not a list")
    converted = []
    for item in items:
        if isinstance(item, dict | list):
            raise SettingsError(f"{source}: {name} takes a value, not {type(item).__name__}")
        text = item if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
        try:
            converted.append(action.type(text) if callable(action.type) else text)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise SettingsError(f"{source}: {name} = {item!r} is not a valid value") from None
        if action.choices is not None and converted[-1] not in action.choices:
            raise SettingsError(f"{source}: {name} = {item!r} is not one of {', '.join(map(str, action.choices))}")
    return converted if many else converted[0]


def apply_settings(
    commands: Mapping[str, argparse.ArgumentParser],
    command: str,
    words: Sequence[str],
    environ: Mapping[str, str],
    pyproject: Path | None,
) -> list[Setting]:
    """Make what the environment and pyproject.toml give for `command` the defaults of its parser (one of
    `commands`), for the options `words` (the command line) does not give. Returns them, for `reproduce`."""
    options = _options(commands[command])
    anywhere = {name for parser in commands.values() for name in _options(parser)}
    found = _table(pyproject, command)
    for name, (_, source) in sorted(found.items()):
        own = source.endswith(f"[tool.conform.{command}]")
        if name not in (options if own else anywhere):
            where = f"conform {command}" if own else "any conform command"
            raise SettingsError(f"{source}: {name.replace('_', '-')!r} is no option of {where}")
    for name in options:
        variable = _PREFIX + name.upper()
        if variable in environ:
            found[name] = (environ[variable], f"environment variable {variable}")
    given = _given(options, words)
    settings: list[Setting] = []
    for name, (value, source) in found.items():
        action = options.get(name)
        if action is None or name in given:
            continue
        option = "--" + name.replace("_", "-")
        converted = _convert(action, value, source, option)
        for sharing in options.values():  # -q and -v share one destination: each sets its first value
            if sharing.dest == action.dest:
                sharing.default = converted
        action.required = False
        settings.append(Setting(option, converted if action.nargs != 0 else converted == action.const, source))
    return settings


def _given(options: Mapping[str, argparse.Action], words: Sequence[str]) -> set[str]:
    """The options the command line gives itself (its parsers allow no abbreviations, so this is exact)."""
    words = list(words)[: list(words).index("--")] if "--" in words else list(words)
    bundled = {letter for word in words if word[:1] == "-" and word[1:2] != "-" for letter in word[1:]}
    return {
        name
        for name, action in options.items()
        for option in action.option_strings
        if option in words
        or any(word.startswith(option + "=") for word in words)
        or (len(option) == 2 and option[1] in bundled)
    }
