"""`python -m lib.data POSTS ANNOTATIONS [--json]`: validate a corpus (lib/data/dataset.py)."""

from lib.data.dataset import main
from lib.errors import run_cli

run_cli(main)
