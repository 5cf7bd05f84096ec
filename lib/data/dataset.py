"""The data path in one call, and the corpus validator CLI (DESIGN §3, §9).

    build_dataset(cfg.data) -> Dataset(posts, examples, splits, report)

    python -m lib.data POSTS ANNOTATIONS [--json] [--config X.toml] [key=value ...]

The CLI loads and validates both files, aligns every annotation row, builds the examples the
configured run would train on and prints their counts per split and the alignment report (with
`--json`: one JSON object whose `annotations` list has, per annotation row, post_id, sentence_id,
symptom, status, rule, start, end -- null when not aligned -- and the rule's score, margin and
runner-up). It writes nothing. Exit status 0, 2
for bad input or config (one line on stderr), 1 for anything else.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import Any

from lib.data.corpus import Annotation, Example, Post, load_annotations, load_posts
from lib.data.examples import AlignmentReport, AlignSettings, build_examples
from lib.data.semantic import SemanticMatcher
from lib.data.split import SPLITS, split_examples
from lib.errors import ArgumentParser


@dataclass
class Dataset:
    posts: dict[str, Post]  # after data.limit, file order
    annotations: list[Annotation]  # rows of those posts, every symptom
    examples: list[Example]  # all splits, deterministic order
    splits: dict[str, list[Example]]  # "train", "val", "test"
    report: AlignmentReport


def align_settings(data_cfg: Any) -> AlignSettings:
    return AlignSettings(
        fuzzy_threshold=float(data_cfg.fuzzy_threshold),
        rules=tuple(data_cfg.align_rules),
        semantic_threshold=float(data_cfg.semantic_threshold),
        semantic_margin=float(data_cfg.semantic_margin),
    )


@dataclass(frozen=True)
class SemanticFactory:
    """Makes the corpus's semantic matcher, only when a row needs the semantic rule (a verbatim
    corpus never loads the encoder)."""

    posts: dict[str, Post]
    settings: AlignSettings
    model: str  # data.semantic_model

    def __call__(self) -> SemanticMatcher:
        from lib.model.sentence_embedder import load_sentence_embedder  # loads torch models

        return SemanticMatcher(
            (post.text for post in self.posts.values()),
            threshold=self.settings.semantic_threshold,
            margin=self.settings.semantic_margin,
            load_encoder=lambda: load_sentence_embedder(self.model),
        )


def build_dataset(data_cfg: Any) -> Dataset:
    """Load, validate, align, build and split per a `[data]` config (duck-typed: needs posts,
    annotations, symptoms, question, negatives, split, seed, limit, criteria and the alignment
    keys fuzzy_threshold, align_rules, semantic_threshold, semantic_margin, semantic_model)."""
    limit = int(data_cfg.limit)  # >= 0, checked at config load
    all_posts = load_posts(data_cfg.posts)
    # Validate against every post, so a row for a post beyond the limit is not "unknown".
    annotations = load_annotations(data_cfg.annotations, all_posts)
    kept = list(all_posts)[:limit] if limit else list(all_posts)
    posts = {pid: all_posts[pid] for pid in kept}
    annotations = [a for a in annotations if a.post_id in posts]
    examples, report = build_examples(
        posts,
        annotations,
        symptoms=list(data_cfg.symptoms),
        question_mode=data_cfg.question,
        criteria=dict(getattr(data_cfg, "criteria", {}) or {}),
        negatives=data_cfg.negatives,
        settings=(settings := align_settings(data_cfg)),
        semantic=SemanticFactory(posts, settings, str(data_cfg.semantic_model)),
    )
    splits = split_examples(examples, seed=int(data_cfg.seed), ratios=list(data_cfg.split))
    return Dataset(posts, annotations, examples, splits, report)


# ---------------------------------------------------------------- the CLI


def _split_counts(examples: list[Example]) -> dict[str, int]:
    positive = sum(1 for e in examples if e.answers)
    return {
        "posts": len({e.post_id for e in examples}),
        "examples": len(examples),
        "positive": positive,
        "negative": len(examples) - positive,
        "spans": sum(len(e.answers) for e in examples),
    }


def _summary(dataset: Dataset, data_cfg: Any) -> dict:
    counts = {name: _split_counts(dataset.splits[name]) for name in SPLITS}
    counts["total"] = _split_counts(dataset.examples)
    evidence = sum(a.status for a in dataset.annotations)
    return {
        "posts": len(dataset.posts),
        "annotation_rows": len(dataset.annotations),
        "evidence_rows": evidence,
        "not_evidence_rows": len(dataset.annotations) - evidence,
        "symptoms": list(data_cfg.symptoms),
        "question": data_cfg.question,
        "negatives": data_cfg.negatives,
        "split_ratios": list(data_cfg.split),
        "seed": data_cfg.seed,
        "examples": counts,
        **dataset.report.to_json(),
    }


def _format(summary: dict, dataset: Dataset, data_cfg: Any) -> str:
    lines = [
        f"posts: {summary['posts']} ({data_cfg.posts})",
        f"annotations: {summary['annotation_rows']} rows ({data_cfg.annotations}): "
        f"{summary['evidence_rows']} evidence, {summary['not_evidence_rows']} not evidence",
        dataset.report.format(),
        f"examples (question={data_cfg.question}, negatives={data_cfg.negatives}, "
        f"{len(data_cfg.symptoms)} symptoms, split {list(data_cfg.split)} seed {data_cfg.seed}):",
        f"  {'split':<8}{'posts':>7}{'examples':>10}{'positive':>10}{'negative':>10}{'spans':>8}",
    ]
    for name, c in summary["examples"].items():
        lines.append(
            f"  {name:<8}{c['posts']:>7}{c['examples']:>10}{c['positive']:>10}"
            f"{c['negative']:>10}{c['spans']:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m lib.data",
        description="Validate a ReDSM5-format corpus; print example counts and the alignment "
        "report. Writes nothing.",
    )
    parser.add_argument("posts", help="posts file: CSV post_id,text or JSONL")
    parser.add_argument("annotations", help="annotations CSV (ReDSM5 columns)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.limit=50")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--config", help="a TOML overlay on config.toml")
    args = parser.parse_intermixed_args(argv)

    from lib.config import load_config  # the CLI's concern; the pure functions take arguments

    cfg = load_config(args.config, args.overrides)
    data_cfg = dataclasses.replace(cfg.data, posts=args.posts, annotations=args.annotations)
    dataset = build_dataset(data_cfg)
    summary = _summary(dataset, data_cfg)
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(_format(summary, dataset, data_cfg))
    return 0
