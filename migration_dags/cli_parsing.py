"""How the command line is read (click): global options before or after the command, commands in
the order they are declared, and a help line for each positional argument.

Every command and the group itself take the same global options (one decorator, applied to each),
so `migration-dags --database-url X plan NAME` and `migration-dags plan NAME --database-url X`
mean the same. Given in both places, the value after the command wins; a flag is on if given
anywhere. The merged options live on the Invocation the caller passes in as click's `obj`, so the
caller can still honour --debug when the command fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import click

from . import settings

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class GlobalOptions:
    database_url: str | None = None
    migrations_dir: str | None = None
    actor: str | None = None
    debug: bool = False
    verbose: bool = False
    quiet: bool = False
    json: bool = False

    def overridden_by(self, after: dict[str, Any]) -> "GlobalOptions":
        """These options (given before the command) with those given after it winning."""
        given = {k: v for k, v in after.items() if v is not None and v is not False}
        return replace(self, **given)


GLOBAL_OPTION_NAMES = tuple(f.name for f in fields(GlobalOptions))


@dataclass
class Invocation:
    """One run of the command line: the global options in effect so far."""

    options: GlobalOptions = field(default_factory=GlobalOptions)


def global_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the global options to a command or to the group. Each use makes new click Options."""
    declared = [
        click.help_option("-h", "--help", help="show this help message and exit"),
        click.option("--database-url", metavar="URL",
                     help=f"target database (env {settings.DATABASE_URL_ENV}; default: the embedded "
                          "server)"),
        click.option("--migrations-dir", metavar="DIR",
                     help=f"folder of migration files (env {settings.MIGRATIONS_DIR_ENV}; default "
                          "./assets)"),
        click.option("--actor", metavar="NAME",
                     help="who runs this, for the runs' actor tag (default: CI user variables, "
                          "else the OS user)"),
        click.option("--debug", is_flag=True, help="print the traceback of an error"),
        click.option("--verbose", "-v", is_flag=True, help="show Dagster's run logs on the console"),
        click.option("--quiet", "-q", is_flag=True, help="no progress lines; only results and errors"),
        click.option("--json", "json", is_flag=True, help="print the result as JSON on stdout"),
    ]
    for option in reversed(declared):  # click lists the last decorator applied first
        func = option(func)
    return func


class DescribedArgument(click.Argument):
    """A positional argument with a line of help: click 8.1, the oldest we accept, gives arguments
    no help text of their own."""

    def __init__(self, param_decls: list[str], description: str, **attrs: Any):
        super().__init__(param_decls, **attrs)
        self.description = description


def migration_name(required: bool = True,
                   description: str = "the migration's name (its file name)") -> Decorator:
    """The NAME argument of a command about one migration."""
    return click.argument("name", cls=DescribedArgument, required=required, description=description)


class Command(click.Command):
    """A command whose help lists its arguments, with their help, before its options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(p.name.upper(), p.description) for p in self.params if isinstance(p, DescribedArgument)]
        if rows:
            with formatter.section("Arguments"):
                formatter.write_dl(rows)
        super().format_options(ctx, formatter)


class Group(click.Group):
    """Lists its commands in the order they were declared (click sorts them by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def build_group(prog: str, help_text: str) -> tuple[Group, Callable[..., Decorator]]:
    """The top-level group, and the `command(name, help, *params)` decorator that adds a command
    to it: the decorated function gets the merged GlobalOptions first, then its own parameters,
    and returns the exit code."""

    @click.group(prog, cls=Group, help=help_text, no_args_is_help=False, add_help_option=False)
    @global_options
    @click.pass_context
    def group(ctx: click.Context, **before: Any) -> None:
        ctx.ensure_object(Invocation).options = GlobalOptions(**before)

    def command(name: str, help_text: str, *params: Decorator) -> Decorator:
        def register(func: Callable[..., int]) -> Callable[..., int]:
            @click.pass_context
            def run(ctx: click.Context, **values: Any) -> int:
                after = {key: values.pop(key) for key in GLOBAL_OPTION_NAMES}
                invocation = ctx.ensure_object(Invocation)
                invocation.options = invocation.options.overridden_by(after)
                return func(invocation.options, **values)

            declared: Callable[..., Any] = run
            for param in reversed(params):
                declared = param(declared)
            group.command(name, cls=Command, help=help_text, short_help=help_text,
                          add_help_option=False)(global_options(declared))
            return func

        return register

    return group, command
