"""Tune hyper-parameters with Optuna; each trial is a training run (DESIGN §7).

    python tune.py [--config X.toml] [key=value ...]
    python tune.py --config demo.toml tune.n_trials=8 tune.storage=journal:runs/demo.journal

Writes runs/<study>/best (the best trial's run directory), best.json and trials.csv.
"""

import json
import logging

from lib.errors import ArgumentParser, run_cli


def main() -> int:
    parser = ArgumentParser(description="Tune hyper-parameters with Optuna.")
    parser.add_argument("--config", help="TOML overlay applied on top of config.toml")
    parser.add_argument("overrides", nargs="*", help="dotted key=value, e.g. tune.n_trials=10")
    args = parser.parse_args()

    from lib.config import load_config
    from lib.training.tuning import run_study

    cfg = load_config(args.config, args.overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    summary = run_study(cfg)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
