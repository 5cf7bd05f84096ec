"""Evaluate a trained run, or predict evidence on new posts (DESIGN §7).

python evaluate.py RUN_DIR                              # the run's test split
python evaluate.py RUN_DIR --split val --html           # + report.html
python evaluate.py RUN_DIR --data POSTS ANNOTATIONS     # other annotated files
python evaluate.py RUN_DIR --predict POSTS [--symptoms FATIGUE,ANHEDONIA] [--chunk-posts 256]
accelerate launch evaluate.py RUN_DIR --predict POSTS  # sharded over processes; resumable
python evaluate.py RUN_DIR decode.multi_span=true decode.snap_to_sentence=true
python evaluate.py RUN_DIR/checkpoints/step-00000200    # a training checkpoint's weights
"""

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
    parser.add_argument(
        "--chunk-posts",
        type=int,
        metavar="N",
        help="--predict: posts per chunk, the unit of memory, output and resuming (default 256)",
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
    if args.chunk_posts is not None and not args.predict:
        parser.error("--chunk-posts applies to --predict only")
    if args.chunk_posts is not None and args.chunk_posts < 1:
        parser.error("--chunk-posts must be a positive number of posts")
    symptoms = args.symptoms.split(",") if args.symptoms else None
    if args.predict:
        return predict(args, symptoms)

    from accelerate import PartialState

    from lib.evaluation.evaluate_run import evaluate_run, format_metrics, resolve_target

    metrics, out = evaluate_run(
        args.run_dir,
        split=args.split,
        data=args.data,
        symptoms=symptoms,
        out=args.out,
        html=args.html,
        precision=args.precision,
        overrides=args.overrides,
    )
    if PartialState().is_main_process:
        target = resolve_target(args.run_dir)
        print(f"scored: {target.weights} of {target.run_dir}")
        print(format_metrics(metrics))
        print(f"wrote: {out}")
    return 0


def predict(args, symptoms: list[str] | None) -> int:
    """--predict: stream the posts through the model in chunks (lib.evaluation.predict_stream)."""
    from pathlib import Path

    from accelerate import PartialState

    from lib.evaluation.evaluate_run import (
        chosen_symptoms,
        load_run_config,
        output_folder,
        resolve_target,
    )
    from lib.evaluation.predict_stream import (
        DEFAULT_CHUNK_POSTS,
        FOLDER_KIND,
        predict_posts,
        render_predict_report,
        summary_line,
    )
    from lib.training.optimization import evaluation_precision

    state = PartialState()
    target = resolve_target(args.run_dir)
    cfg = load_run_config(target.run_dir, args.overrides)
    out = output_folder(target, "predict", args.out, FOLDER_KIND)
    symptoms = chosen_symptoms(cfg, symptoms)
    summary = predict_posts(
        target,
        cfg,
        Path(args.predict),
        symptoms=symptoms,
        out=out,
        chunk_posts=args.chunk_posts or DEFAULT_CHUNK_POSTS,
        precision=evaluation_precision(args.precision, cfg.train.mixed_precision, state.device),
    )
    if state.is_main_process:
        if args.html:
            render_predict_report(out, Path(args.predict), target, cfg, symptoms)
        print(f"scored: {target.weights} of {target.run_dir}")
        print(summary_line(summary))
        print(f"wrote: {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
