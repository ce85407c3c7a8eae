"""The command line: ``landexplorer ...``. Business logic lives in the other packages."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from landexplorer.cli import (
    analysis_cmd,  # noqa: F401 - registers commands
    layers_cmd,  # noqa: F401 - registers commands
    migrate_cmd,  # noqa: F401 - registers commands
    serve_cmd,  # noqa: F401 - registers commands
    tiles_cmd,  # noqa: F401 - registers commands
)
from landexplorer.cli.app import app, err, state
from landexplorer.errors import LandExplorerError


class Interrupted(BaseException):
    """Ctrl-C. Not a KeyboardInterrupt, so that nothing between here and the writer turns it
    into something else; every writer cleans up on any BaseException."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes end with a plain explanation and a non-zero exit, no traceback."""
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        app(args=argv, standalone_mode=False)
    except Interrupted:
        err.print("Stopped. Nothing was changed in the catalogue.")
        return 130
    except LandExplorerError as exc:
        err.print(f"[bold red]Error:[/] {exc.public}")
        if state.debug and exc.detail:
            err.print(f"[dim]{exc.detail}[/]")
        return 1
    except Exception as exc:
        # typer ships its own click: recognise its usage errors, exits and aborts by shape
        name = type(exc).__name__
        code = getattr(exc, "exit_code", None)
        if callable(getattr(exc, "show", None)) and isinstance(code, int):
            exc.show()  # type: ignore[attr-defined]
            return code
        if name == "Exit" and isinstance(code, int):
            return code
        if name == "Abort":
            err.print("Stopped.")
            return 1
        if state.debug:
            raise
        err.print(
            f"[bold red]Something went wrong that landexplorer did not expect:[/] "
            f"{type(exc).__name__}: {exc}\nNothing was changed. Run again with --debug for "
            "details, and please report it."
        )
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
        state.close_store()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["app", "main"]
