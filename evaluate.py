"""Evaluate a trained run, or predict evidence on new posts (DESIGN §7).

python evaluate.py RUN_DIR                              # the run's test split
python evaluate.py RUN_DIR --split val --html           # + report.html
python evaluate.py RUN_DIR --data POSTS ANNOTATIONS     # other annotated files
python evaluate.py RUN_DIR --predict POSTS [--symptoms FATIGUE,ANHEDONIA]
python evaluate.py RUN_DIR decode.multi_span=true decode.snap_to_sentence=true
python evaluate.py RUN_DIR/checkpoints/step-00000200    # a training checkpoint's weights
"""

import json

from lib.errors import ArgumentParser, run_cli


def main() -> int:
    parser = ArgumentParser(description="Evaluate a trained run directory.")
    parser.add_argument(
        "run_dir",
        help="a run directory written by train.py, or one of its checkpoints "
        "(RUN_DIR/checkpoints/step-N: its weights, the run's config and tokenizer)",
    )
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    parser.add_argument(
        "--data",
        nargs=2,
        metavar=("POSTS", "ANNOTATIONS"),
        help="evaluate on these annotated files instead of the run's data",
    )
    parser.add_argument(
        "--predict", metavar="POSTS", help="predict only, on posts with no annotations"
    )
    parser.add_argument("--symptoms", help="comma-separated symptoms (default: the run's)")
    parser.add_argument("--out", help="output folder (default RUN_DIR/eval-<split>)")
    parser.add_argument("--html", action="store_true", help="also write report.html")
    parser.add_argument(
        "--precision",
        choices=["no", "bf16", "fp16", "auto"],
        help="inference precision (default: the run's train.mixed_precision)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="decode.key=value, e.g. decode.multi_span=true"
    )
    args = parser.parse_args()
    if args.data and args.predict:
        parser.error("--data and --predict cannot be combined")

    from accelerate import PartialState

    from lib.evaluation.evaluate_run import evaluate_run, format_metrics, resolve_target

    metrics, out = evaluate_run(
        args.run_dir,
        split=args.split,
        data=args.data,
        predict=args.predict,
        symptoms=args.symptoms.split(",") if args.symptoms else None,
        out=args.out,
        html=args.html,
        precision=args.precision,
        overrides=args.overrides,
    )
    if PartialState().is_main_process:
        target = resolve_target(args.run_dir)
        print(f"scored: {target.weights} of {target.run_dir}")
        if metrics is not None:
            print(format_metrics(metrics))
        else:
            with open(out / "predictions.jsonl", encoding="utf-8") as f:
                n = sum(1 for _ in f)
            print(json.dumps({"predictions": n}))
        print(f"wrote: {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
