"""Writing files safely: atomically, with the user's umask, as strict JSON (DESIGN §10).

Every output goes to a temporary name beside its destination and is renamed over it when
complete, so a reader (or a process killed mid-write) sees the old file or the new one, never
half of one. `tempfile.mkstemp` creates its file mode 0600; the finished file gets the mode a
plain `open()` would have given it (0666 minus the umask), because labs share run folders.
JSON is strict: NaN and ±Infinity are not JSON, so they are written as null.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lib.errors import UserError, path_error


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold one object; a UserError naming the file otherwise."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    except OSError as err:
        raise path_error(path, "read", err) from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a JSON object")
    return values


def write_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temp_path) next to `path`, then rename over it: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise path_error(path, "write", err) from None
    os.close(handle)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomically(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def strict_json(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (recursively through dicts/lists)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: strict_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(value) for value in obj]
    return obj


def json_line(obj: Any) -> str:
    """One strict-JSON line (predictions.jsonl)."""
    return json.dumps(strict_json(obj), ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(strict_json(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    write_text_atomic(path, text)
