"""Fine-tune a QA model on the evidence-binding task (DESIGN §7).

    accelerate launch train.py [--config X.toml] [key=value ...]
    python train.py --config demo.toml train.epochs=1

The last line printed is `run: <run directory>`.
"""

import logging

from lib.errors import ArgumentParser, run_cli


def main() -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--config", help="TOML overlay applied on top of config.toml")
    parser.add_argument("overrides", nargs="*", help="dotted key=value, e.g. train.lr=5e-5")
    args = parser.parse_args()

    from accelerate import PartialState

    from lib.training.run_setup import load_train_config
    from lib.training.trainer import train

    cfg = load_train_config(args.config, args.overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # not a line per saved file
    metrics = train(cfg)
    if not PartialState().is_main_process:
        return 0
    for split in ("val", "test"):
        if split in metrics:
            shown = {k: round(v, 4) for k, v in metrics[split].items() if "/" not in k}
            print(f"{split}: {shown}")
    print(f"run: {metrics['run_dir']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
