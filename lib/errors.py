"""User-facing errors and the CLI wrapper that turns them into one line and exit status 2.

Every mistake a user can make (bad file, bad column, bad config key, a model folder that does not
load) raises `UserError` with a message that names the file/row/key. Entry points run through
`run_cli`, so the user sees `error: <message>` and exit status 2 -- never a traceback.
A `RunError` (a run that failed for a reason we can name) is one line and exit status 1; anything
else is a bug: traceback and exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input, config or files; the message is the whole explanation."""


class RunError(RuntimeError):
    """A run that cannot go on for a reason we can name (e.g. the loss became NaN): exit 1."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run `main`; a UserError prints one line on stderr and exits 2, success exits 0."""
    try:
        code = main()
    except UserError as err:
        message = " ".join(str(err).split("\n"))  # one line, always
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
