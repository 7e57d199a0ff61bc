"""The `lapse` command line (Typer): one sub-command per job, one error handler for every user error."""

from __future__ import annotations

import os
import sys

import typer
from pydantic import ValidationError

from cli.commands import (
    build, demo, effect, features, monitor, outcomes, promote, report, score_batch, serve, simulate, train,
    validate,
)
from config import LapseError

EXIT_OK = 0
EXIT_USER_ERROR = 2

app = typer.Typer(name="lapse", help="Dropout risk for digital mental health programs: one command per job.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
for module in (simulate, validate, features, train, promote, serve, build, report, score_batch, monitor, demo, effect):
    text = " ".join(module.__doc__.split())
    app.command(module.NAME, help=text, short_help=text.split(". ")[0] + ".")(module.command)
app.add_typer(outcomes.app, name=outcomes.NAME, short_help=" ".join(outcomes.__doc__.split()).split(": ")[0] + ".")


def user_error(exc: BaseException) -> str | None:
    """The message of an error the user can fix (bad data, settings or arguments), else None.

    Besides LapseError: stage errors defined outside the LapseError tree, and, as every command has always
    done, ValueError / OSError raised while reading the user's files.
    """
    if isinstance(exc, ValidationError):  # settings built wrongly in code (user settings raise ConfigError)
        return None
    if isinstance(exc, (LapseError, ValueError, OSError)):
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the sub-command named on the command line and return its exit code (0 ok, 2 user error)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    args = sys.argv[1:] if argv is None else list(argv)
    name = next((a for a in args if not a.startswith("-")), "")
    try:
        code = app(args=args, prog_name="lapse", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("lapse: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # bad or missing arguments: the usage and the problem
        exc.show(file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        print(f"{' '.join(['lapse', name]).strip()}: {message}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))
    return int(code or EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
