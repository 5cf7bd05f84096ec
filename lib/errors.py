"""User-facing errors and the CLI wrapper that turns them into one line and exit status 2.

Every mistake a user can make (bad file, bad column, bad config key, a model folder that does not
load, a path we cannot read or write) raises `UserError` with a message that names the
file/row/key. Entry points run through `run_cli`, so the user sees `error: <message>` and exit
status 2 -- never a traceback (DESIGN §10). A `RunError` (a run that failed for a reason we can
name) is one line and exit status 1; anything else is a bug: traceback and exit status 1.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import unicodedata
from collections.abc import Callable, Iterable


class UserError(Exception):
    """A problem with the user's input, config or files; the message is the whole explanation."""


class RunError(RuntimeError):
    """A run that cannot go on for a reason we can name (e.g. the loss became NaN): exit 1."""


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """` (did you mean <prefix><closest>?)`, or "" when nothing is close (case ignored last)."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:  # FATIGUE for fatigue: difflib compares case-sensitively
        lowered = {choice.lower(): choice for choice in choices}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), lowered, n=1)]
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def os_reason(err: OSError) -> str:
    """The OS's own words for an error ("Permission denied"), without Python's decoration."""
    return err.strerror or type(err).__name__


def path_error(path: str | os.PathLike, action: str, err: OSError) -> UserError:
    """`<path>: cannot <action> (<OS reason>)` -- the one shape of every OS error we report."""
    return UserError(f"{path}: cannot {action} ({os_reason(err)})")


def printable(text: str) -> str:
    """`text` on one line with every control/format character escaped: a message quoting a
    corrupt file (a UTF-16 NUL, an ANSI escape, a zero-width space) cannot garble the terminal."""
    out = []
    for ch in " ".join(text.split("\n")):
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a UserError too: one line, exit status 2."""

    def error(self, message: str):
        raise UserError(f"{message} (usage: {self.prog} --help)")


def run_cli(main: Callable[[], int | None]) -> None:
    """Run `main`; a UserError prints one line on stderr and exits 2, success exits 0."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        sys.exit(2)
    except RunError as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly (Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code or 0)
