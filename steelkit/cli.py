"""``python -m steelkit``: the command line. Each subcommand is a thin layer over one module."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from steelkit import rle as rle_lib


def _shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HEIGHTxWIDTH, e.g. 256x1600") from None
    return height, width


def _shape_near(path: Path, given: tuple[int, int] | None) -> tuple[int, int]:
    """The image size for RLEs in ``path``: as given, else read off images beside it, else 256 x 1600."""
    from steelkit.competition import image_shape

    if given:
        return given
    try:
        return image_shape(path.parent)
    except FileNotFoundError:
        return rle_lib.DEFAULT_SHAPE


def cmd_synth(args) -> int:
    from steelkit import synthetic

    config = synthetic.SynthConfig(n_train=args.train, n_test=args.test, seed=args.seed,
                                   height=args.shape[0], width=args.shape[1], train_schema=args.schema)
    out = synthetic.make(args.out, config)
    print(f"wrote a synthetic competition to {out}: {args.train} train and {args.test} test images of "
          f"{config.height}x{config.width}; hidden truth in {out / 'test_truth.csv'}")
    return 0


def cmd_score(args) -> int:
    from steelkit import metric
    from steelkit.competition import read_table

    truth, _, _ = read_table(args.truth)
    pred, _, _ = read_table(args.submission)
    shape = _shape_near(Path(args.truth), args.shape)
    scores = metric.dice_tables(truth, pred, shape)
    empty = metric.dice_tables(truth, pred.assign(**{c: "" for c in pred.columns if c != "ImageId"}), shape)
    print(metric.format_report(metric.summarize(scores[[1, 2, 3, 4]].to_numpy()),
                               metric.summarize(empty[[1, 2, 3, 4]].to_numpy())))
    return 0


def cmd_validate(args) -> int:
    from steelkit import submission

    shape = _shape_near(Path(args.sample), args.shape)
    try:
        rows = submission.validate(args.submission, args.sample, shape)
    except (submission.SubmissionError, FileNotFoundError, ValueError) as error:
        print(f"invalid: {error}", file=sys.stderr)
        return 1
    print(f"valid: {args.submission} has the {rows} rows of {args.sample}, every RLE inside {shape[0]}x{shape[1]}")
    return 0


def cmd_folds(args) -> int:
    from steelkit import folds
    from steelkit.competition import read_labels

    data = Path(args.data)
    table = read_labels(data / "train.csv", data / "train_images" if (data / "train_images").is_dir() else None)
    made = folds.make_folds(table, args.n_folds, args.seed)
    out = folds.save_folds(made, args.out or data / "folds.csv")
    print(f"wrote {out}: {len(made)} images in {args.n_folds} folds")
    print(made["fold"].value_counts().sort_index().to_string())
    return 0


def cmd_train(args) -> int:
    from steelkit import recipe as recipes
    from steelkit.train import train

    recipe = recipes.override(recipes.preset(args.preset), [f"fold={args.fold}", *args.set])
    result = train(recipe, args.data, args.out, resume=args.resume, epochs_now=args.epochs_now, device=args.device)
    print(f"{recipe.name} fold {recipe.fold}: best score {result['best_score']:.5f} after "
          f"{result['epochs_done']}/{recipe.epochs} epochs; outputs in {result['out']}")
    return 0


def cmd_demo(args) -> int:
    from steelkit import metric, submission, synthetic
    from steelkit.competition import read_table

    out = Path(args.out)
    data = synthetic.make(out / "data", synthetic.SynthConfig(n_train=args.train, n_test=args.test, seed=args.seed,
                                                             height=args.shape[0], width=args.shape[1]))
    truth, _, _ = read_table(data / "test_truth.csv")
    empty = truth.assign(**{c: "" for c in truth.columns if c != "ImageId"})
    for name, table in (("all-empty", empty), ("perfect", truth)):
        path = submission.write(table, data / "sample_submission.csv", out / f"submission-{name}.csv", args.shape)
        scores = metric.dice_tables(truth, read_table(path)[0], args.shape)
        print(f"== {name}: {path}")
        print(metric.format_report(metric.summarize(scores[[1, 2, 3, 4]].to_numpy())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m steelkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic mini-competition in the Kaggle layout")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=200)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=_shape, default=rle_lib.DEFAULT_SHAPE, help="HEIGHTxWIDTH (default 256x1600)")
    p.add_argument("--schema", choices=("long", "wide"), default="long", help="schema of train.csv and the sample")
    p.set_defaults(run=cmd_synth)

    p = sub.add_parser("score", help="Kaggle mean Dice of a submission against the truth (either schema)")
    p.add_argument("submission")
    p.add_argument("truth")
    p.add_argument("--shape", type=_shape, help="image size (default: read off images beside TRUTH, else 256x1600)")
    p.set_defaults(run=cmd_score)

    p = sub.add_parser("validate", help="check a submission against sample_submission.csv")
    p.add_argument("submission")
    p.add_argument("--sample", required=True)
    p.add_argument("--shape", type=_shape, help="image size (default: read off images beside SAMPLE, else 256x1600)")
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("folds", help="multilabel-stratified folds of train.csv, saved as CSV")
    p.add_argument("--data", required=True, help="competition folder (train.csv, train_images/)")
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", help="CSV to write (default DATA/folds.csv)")
    p.set_defaults(run=cmd_folds)

    p = sub.add_parser("train", help="train one model (one stage, one fold) from a preset")
    p.add_argument("--preset", required=True, help="cls-effb1, cls-r34, seg-unet-effb3, seg-fpn-effb3, "
                   "seg-fpn-effb3-dice, cls-tiny, seg-tiny")
    p.add_argument("--data", required=True, help="competition folder (train.csv, train_images/)")
    p.add_argument("--out", required=True, help="output folder (checkpoints, recipe.json, metrics.csv, oof.npz)")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--epochs-now", type=int, help="stop after this many epochs in this call (resume later)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("demo", help="the offline rehearsal on a synthetic mini-competition")
    p.add_argument("--out", default="demo-output")
    p.add_argument("--train", type=int, default=60)
    p.add_argument("--test", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=_shape, default=(128, 800))
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
