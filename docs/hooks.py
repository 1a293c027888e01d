"""MkDocs hook: the command-line and configuration references, generated from the code at build time.

`reference/cli.md` comes from the typer application (every command, its arguments and options, their help and
defaults); `reference/configuration.md` from the pydantic models of the configuration (every key, its type,
default and constraints, and the comment beside it in the source). Neither is committed, so neither can drift.
tests/test_docs.py calls the two functions below and checks that every command and every key is covered.
"""

from __future__ import annotations

import ast
import html
import inspect
import textwrap
import types
import typing
from typing import Any

CLI_PAGE = "reference/cli.md"
CONFIG_PAGE = "reference/configuration.md"


def _shown(text: str) -> str:
    """`<...>` outside code spans shown as written rather than read as HTML."""
    parts = str(text).split("`")
    return "`".join(html.escape(p, quote=False) if i % 2 == 0 else p for i, p in enumerate(parts))


def _cell(text: str) -> str:
    """One table cell: on one line, pipes escaped."""
    return _shown(" ".join(str(text).split()).replace("|", "\\|"))


# ---- the command line -----------------------------------------------------------------------------------------


def cli_commands() -> dict[str, Any]:
    """The click commands behind the typer app, by name, in the order the app registers them."""
    import typer.main
    from latent.flows.cli import app

    return dict(typer.main.get_command(app).commands)


def cli_reference() -> str:
    import click
    import typer.main
    from latent.flows.cli import app

    group = typer.main.get_command(app)
    root = click.Context(group, info_name="latent")
    lines = [
        "# Command-line reference",
        "",
        "Generated from the command line itself when this site is built (`latent COMMAND --help` prints the same).",
        "",
        f"`latent [--version] COMMAND [OPTIONS] [ARGUMENTS]`: {_cell(group.help or '')}",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    commands = dict(group.commands)
    for name, command in commands.items():
        summary = (command.help or "").strip().split("\n\n")[0]
        lines.append(f"| [`latent {name}`](#latent-{name}) | {_cell(summary)} |")
    for name, command in commands.items():
        ctx = click.Context(command, info_name=name, parent=root)
        usage = " ".join(["latent", name, *command.collect_usage_pieces(ctx)])
        lines += [
            "",
            f"## `latent {name}` {{ #latent-{name} }}",
            "",
            _shown(textwrap.dedent(command.help or "").strip()),
            "",
        ]
        lines += ["```", usage, "```", ""]
        records = [(p, p.get_help_record(ctx)) for p in command.params]
        records = [(p, r) for p, r in records if r is not None]
        if records:
            lines += ["| argument or option | meaning |", "|---|---|"]
            for param, (names, help_text) in records:
                kind = "" if param.param_type_name == "option" else " (argument)"
                code = names.replace("|", "\\|")
                lines.append(f"| `{code}`{kind} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


# ---- the configuration ----------------------------------------------------------------------------------------


def field_comments(model: type) -> dict[str, str]:
    """The comment beside each field in the class's source: on the field's own line, or on the lines just above."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        parts = []
        above = node.lineno - 2
        block = []
        while above >= 0 and lines[above].strip().startswith("#"):
            block.insert(0, lines[above].strip().lstrip("#").strip())
            above -= 1
        parts += block
        for line in lines[node.lineno - 1 : node.end_lineno]:
            if "  # " in line:
                parts.append(line.split("  # ", 1)[1].strip())
        if parts:
            comments[node.target.id] = " ".join(parts)
    return comments


def _nested_model(annotation: Any) -> type | None:
    from pydantic import BaseModel

    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" if a is not None else "null" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: Any) -> str:
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥", "max_length": "length ≤"}
    found = []
    for item in field.metadata:
        for attr, symbol in symbols.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{symbol} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            found.append(f"matches `{pattern}`")
    return ", ".join(found)


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, dict) and not value:
        return "`{}`"
    return "`null`" if value is None else f"`{_cell(value)}`" if not isinstance(value, str) else f'`"{_cell(value)}"`'


def config_keys(model: type | None = None, prefix: str = "") -> list[tuple[str, Any, type]]:
    """Every leaf key of the configuration, dotted (`train.epochs`), with its pydantic field and owning model."""
    if model is None:
        from latent.config import Config

        model = Config
    keys = []
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is not None:
            keys += config_keys(nested, f"{prefix}{name}.")
        else:
            keys.append((f"{prefix}{name}", field, model))
    return keys


def config_reference() -> str:
    from latent.config import Config

    lines = [
        "# Configuration reference",
        "",
        "Generated from the configuration's own models when this site is built, so it lists exactly the keys that",
        '`latent` accepts. Validation is strict: an unknown key, a value of the wrong type (no silent `"5"` → 5)',
        "or one out of range is refused with the file (or `--set`), the key, what was expected and what was given.",
        "A key is set in a YAML file (`train: {epochs: 20}`) or on the command line (`--set train.epochs=20`).",
        "",
    ]
    sections: dict[str, list[tuple[str, Any, type]]] = {}
    for key, field, owner in config_keys(Config):
        sections.setdefault(key.split(".")[0] if "." in key else "(top level)", []).append((key, field, owner))
    comments: dict[type, dict[str, str]] = {}
    for section, keys in sections.items():
        lines += [f"## `{section}`" if section != "(top level)" else "## Top level", ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, field, owner in keys:
            if owner not in comments:
                comments[owner] = field_comments(owner)
            meaning = field.description or comments[owner].get(key.rsplit(".", 1)[-1], "")
            constraint = _constraints(field)
            if constraint:
                meaning = f"{meaning} ({constraint})" if meaning else constraint
            lines.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)


# ---- the hook -------------------------------------------------------------------------------------------------


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    files.append(File.generated(config, CONFIG_PAGE, content=config_reference()))
    return files
