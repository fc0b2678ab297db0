"""``python -m steelkit``: the command line. Each subcommand is a thin layer over one module."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
import warnings
from pathlib import Path

from tqdm import tqdm

from steelkit import atomic, errors
from steelkit import rle as rle_lib
from steelkit.errors import UserError
from steelkit.recipe import PRESETS


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
        return rle_lib.IMAGE_SHAPE


def cmd_synth(args) -> int:
    import tempfile

    from steelkit import realism, synthetic

    if args.out is None and not args.compare:
        raise UserError("name the folder to write the competition to (OUT), or --compare REAL_DIR")
    if args.compare and not Path(args.compare).is_dir():
        raise FileNotFoundError(f"--compare {args.compare}: no such folder of real images")
    config = synthetic.SynthConfig(n_train=args.train, n_test=args.test, seed=args.seed, height=args.shape[0],
                                   width=args.shape[1], train_schema=args.schema, texture=args.texture)
    with tempfile.TemporaryDirectory() as scratch:
        out = synthetic.make(args.out or Path(scratch) / "synthetic", config, replace=args.replace)
        if args.out is not None:
            print(f"wrote a synthetic competition to {out}: {args.train} train and {args.test} test images of "
                  f"{config.height}x{config.width}; hidden truth in {out / 'test_truth.csv'}")
        if args.compare:
            ours = realism.folder_statistics(out / "train_images", out / "train.csv")
            real = realism.folder_statistics(args.compare, args.labels)
            print(f"{args.train} synthetic training images (seed {args.seed}) against the "
                  f"{len(real['intensity std'])} real images of {args.compare}"
                  + (f" labelled by {args.labels}" if args.labels else " (no labels given: texture only)")
                  + "; distance: two-sample Kolmogorov-Smirnov (shares: their difference)\n")
            print(realism.format_table(realism.compare(ours, real)))
    return 0


def cmd_score(args) -> int:
    from steelkit import metric, submission
    from steelkit.competition import image_files, image_shape, read_table

    truth, _, _ = read_table(args.truth)
    images = [p.name for p in image_files(args.images)] if args.images else None
    pairs, unlisted = submission.check_covers(args.submission, args.truth, images)
    pred, _, _ = read_table(args.submission)
    shape = args.shape or (image_shape(args.images) if args.images else _shape_near(Path(args.truth), None))
    print(metric.format_report(*metric.score_tables(truth, pred, shape)))
    print(f"{pairs // 4} images scored" + (f", {len(unlisted)} of them as defect-free: {args.truth} (long schema) "
                                           "lists only images with defects" if unlisted else ""))
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

    base = recipes.Recipe.load(args.recipe) if args.recipe else recipes.preset(args.preset)
    recipe = recipes.override(base, ([f"fold={args.fold}"] if args.fold is not None else []) + args.set)
    from steelkit.train import train  # torch and the models: seconds, after the recipe's mistakes are named

    result = train(recipe, args.data, args.out, resume=args.resume, epochs_now=args.epochs_now, device=args.device,
                   time_limit=args.time_limit)
    print(f"{recipe.name} fold {recipe.fold}: best score {result['best_score']:.5f} after "
          f"{result['epochs_done']}/{recipe.epochs} epochs; outputs in {result['out']}")
    if result["stopped"]:
        print("stopped by the time limit; to go on: the same command with --resume (and a new --time-limit)")
    return 0


def _report_against_truth(table, truth_path: Path, data: Path, shape, overlays_dir: Path | None) -> None:
    from steelkit import metric, overlay
    from steelkit.competition import read_table

    truth, _, _ = read_table(truth_path)
    print(metric.format_report(*metric.score_tables(truth, table, shape)))
    if overlays_dir is not None:
        try:  # pictures come after a valid submission: they warn, never change the exit status
            written = overlay.write_overlays(data / "test_images", table, truth, overlays_dir, shape)
            print(f"{len(written)} overlay pictures in {overlays_dir}")
        except (OSError, ValueError) as error:
            warnings.warn(f"no overlay pictures: {error}", stacklevel=1)


def cmd_predict(args) -> int:
    from steelkit import ensemble, predict

    config = predict.InferenceConfig.load(args.config) if args.config else predict.InferenceConfig()
    if args.tta:
        config = dataclasses.replace(config, tta=tuple(args.tta.split(",")))
    result = predict.predict(args.data, ensemble.find_checkpoints(args.classifiers or []),
                             ensemble.find_checkpoints(args.segmenters), args.out, config,
                             pseudo_out=args.pseudo_out, pseudo_round=args.round, device=args.device)
    print(f"wrote {result['submission']}: {result['images']} test images"
          + (f", {len(result['failed'])} unreadable (empty predictions): {', '.join(result['failed'])}"
             if result["failed"] else ""))
    if args.pseudo_out:
        print(f"wrote {result['pseudo']}: {result['pseudo_images']} pseudo-labelled images (round {args.round})")
    data = Path(args.data)
    truth = Path(args.truth) if args.truth else data / "test_truth.csv"
    if truth.is_file():
        _report_against_truth(result["table"], truth, data, result["shape"],
                              Path(args.overlays) if args.overlays else Path(args.out).parent / "overlays")
    return 0


def cmd_thresholds(args) -> int:
    from steelkit import predict, thresholds

    base = predict.InferenceConfig.load(args.config) if args.config else predict.InferenceConfig()
    result = thresholds.search(args.classifiers or [], args.segmenters, args.data, base.postprocess, args.splits)
    print(thresholds.format_report(result))
    out = dataclasses.replace(base, postprocess=result["config"]).save(args.out)
    print(f"wrote {out}")
    try:  # the picture beside the config; it never changes the exit status
        from steelkit import figures

        print(f"wrote {figures.threshold_search(result['curves'], Path(out).with_suffix('.png'))}")
    except Exception as error:  # noqa: BLE001 (matplotlib's failures are many)
        warnings.warn(f"no threshold-search figure: {error}", stacklevel=1)
    return 0


def cmd_pseudo(args) -> int:
    from steelkit import ensemble, predict

    config = predict.InferenceConfig.load(args.config) if args.config else predict.InferenceConfig()
    result = predict.predict(args.data, ensemble.find_checkpoints(args.classifiers),
                             ensemble.find_checkpoints(args.segmenters), None, config, pseudo_out=Path(args.out),
                             pseudo_round=args.round, device=args.device)
    print(f"wrote {result['pseudo']}: {result['pseudo_images']} of {result['images']} test images chosen "
          f"(round {args.round})")
    return 0


def cmd_budget(args) -> int:
    from steelkit import budget, ensemble, models

    if args.train:
        return training_budget(args)
    if not args.segmenters:
        raise UserError("budget: give --segmenters (the submission's ensemble) or --train PRESET")
    paths = ensemble.find_checkpoints((args.classifiers or []) + args.segmenters)
    if args.measure:
        loaded = [models.load_model(path) for path in paths]
        result = budget.measure([(model, recipe.stage) for model, recipe in loaded], args.images, args.tta,
                                args.batch_size, args.device)
    else:
        recipes = [models.load_model(path)[1] for path in paths]
        result = budget.estimate(recipes, args.images, args.tta, gpus=args.gpus, rates=rates_of(args))
    print(result)
    return 1 if result.over_limit else 0


def rates_of(args):
    """``--rates``: a GPU check's measured throughputs, carried to a T4 (None: the estimates)."""
    from steelkit import budget

    return budget.read_rates(args.rates) if args.rates else None


def training_budget(args) -> int:
    """One training kernel's time on Kaggle: estimated, or from steps measured on this machine's device."""
    from steelkit import budget
    from steelkit import recipe as recipes

    recipe = recipes.override(recipes.preset(args.train), args.set)
    valid = args.train_images // recipe.n_folds
    measured = budget.measure_training(recipe, args.device) if args.measure else None
    result = budget.estimate_training(recipe, args.train_images - valid + args.pseudo, valid, gpus=args.gpus,
                                      measured=measured, rates=rates_of(args))
    parts = result.parts()
    cap = f"session limit of {budget.SESSION_HOURS:g} hours"
    print(f"{result}\n" + (f"fits one Kaggle {cap}" if len(parts) == 1 else
                           f"longer than Kaggle's {cap}: {len(parts)} parts of {parts} epochs"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m steelkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic mini-competition in the Kaggle layout, or compare one "
                                     "with real images")
    p.add_argument("out", nargs="?", help="the folder to write it to (optional with --compare)")
    p.add_argument("--train", type=int, default=200)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=_shape, default=rle_lib.IMAGE_SHAPE, help="HEIGHTxWIDTH (default 256x1600)")
    p.add_argument("--schema", choices=("long", "wide"), default="long", help="schema of train.csv and the sample")
    p.add_argument("--replace", action="store_true", help="replace a competition already in OUT, whole")
    p.add_argument("--texture", type=float, default=1.0, help="the sheets' texture: 1 = the real sheets' "
                   "(default), lower = calmer")
    p.add_argument("--compare", metavar="REAL_DIR", help="print the realism table of the synthetic training "
                   "images against this folder of real images")
    p.add_argument("--labels", metavar="CSV", help="with --compare: the real images' train.csv (either schema), "
                   "for the defect statistics")
    p.set_defaults(run=cmd_synth)

    p = sub.add_parser("score", help="Kaggle mean Dice of a submission against the truth (either schema)")
    p.add_argument("submission")
    p.add_argument("truth")
    p.add_argument("--images", help="the folder of the images scored, for a long-schema truth (it lists only "
                                    "the images with defects; default: the submission's images)")
    p.add_argument("--shape", type=_shape, help="image size (default: read off --images or images beside TRUTH, "
                                                "else 256x1600)")
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
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help=", ".join(PRESETS))
    source.add_argument("--recipe", help="a recipe.json to train (as steelkit.launch passes it to torchrun)")
    p.add_argument("--data", required=True, help="competition folder (train.csv, train_images/)")
    p.add_argument("--out", required=True, help="output folder (checkpoints, recipe.json, metrics.csv, oof.npz)")
    p.add_argument("--fold", type=int, help="the fold to validate on (default: the preset's or recipe's, 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--epochs-now", type=int, help="stop after this many epochs in this call (resume later)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="stop cleanly before an epoch that would not fit in this time (seconds or e.g. 11h30m)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("predict", help="ensemble + TTA prediction, post-processing, submission.csv")
    p.add_argument("--data", required=True, help="competition folder (test_images/, sample_submission.csv)")
    p.add_argument("--classifiers", nargs="*", help="training outputs (folders holding best.pt) or checkpoints")
    p.add_argument("--segmenters", nargs="+", required=True)
    p.add_argument("--out", default="submission.csv")
    p.add_argument("--config", help="inference.json (post-processing, TTA); default: the seed's numbers")
    p.add_argument("--tta", help="comma-separated TTA modes: none,hflip,vflip")
    p.add_argument("--pseudo-out", help="also write pseudo labels here (the seed's rule)")
    p.add_argument("--round", type=int, default=1, help="pseudo-label round number")
    p.add_argument("--truth", help="score against this truth (default DATA/test_truth.csv if present)")
    p.add_argument("--overlays", help="folder for overlay pictures (default: beside --out)")
    p.add_argument("--device", help="cpu, cuda:0 or several, cuda:0,cuda:1 (default: every GPU, else cpu)")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("thresholds", help="tune post-processing on out-of-fold probabilities")
    p.add_argument("--data", required=True, help="competition folder (train.csv for the truth)")
    p.add_argument("--classifiers", nargs="*", help="classifier training outputs (oof.npz)")
    p.add_argument("--segmenters", nargs="+", required=True, help="segmenter training outputs (oof.npz)")
    p.add_argument("--splits", type=int, default=5,
                   help="cross-validation parts: a class leaves the seed's numbers only on a positive held-out "
                        "gain (default 5; 1 takes the in-sample best)")
    p.add_argument("--config", help="inference.json to start from (its TTA and batch settings are kept)")
    p.add_argument("--out", default="inference.json")
    p.set_defaults(run=cmd_thresholds)

    p = sub.add_parser("pseudo", help="pseudo labels of the test images (the seed's rule)")
    p.add_argument("--data", required=True)
    p.add_argument("--classifiers", nargs="+", required=True)
    p.add_argument("--segmenters", nargs="+", required=True)
    p.add_argument("--config")
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--out", default="pseudo.csv")
    p.add_argument("--device", help="cpu, cuda:0 or several, cuda:0,cuda:1 (default: every GPU, else cpu)")
    p.set_defaults(run=cmd_pseudo)

    p = sub.add_parser("budget", help="the submission's (or a training kernel's) run time on Kaggle: estimated, "
                                      "or measured here")
    p.add_argument("--classifiers", nargs="*", help="training outputs or checkpoints")
    p.add_argument("--segmenters", nargs="+")
    p.add_argument("--images", type=int, default=5506, help="test images (default: today's 5,506)")
    p.add_argument("--train", metavar="PRESET", help="a training kernel's time instead (with --set, --pseudo)")
    p.add_argument("--train-images", type=int, default=12568, help="with --train: the train set (a fold validates "
                   "1/n_folds)")
    p.add_argument("--pseudo", type=int, default=0, help="with --train: pseudo-label rows added")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="with --train: a recipe override")
    p.add_argument("--tta", type=int, default=3, help="TTA modes")
    p.add_argument("--gpus", type=int, default=2, help="with the estimate: GPUs sharing the ensemble")
    p.add_argument("--measure", action="store_true", help="time the models on this machine's device instead")
    p.add_argument("--rates", metavar="GPU_CHECK_JSON", help="with the estimate: the throughputs a GPU check "
                   "measured (python -m tests.gpu), carried to a T4, instead of the published figures")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device")
    p.set_defaults(run=cmd_budget)

    return parser


# A user's mistake (a bad file, row, value or option: steelkit.errors) and the OS's refusals of a named file
# surface as one of these, with a message that names it: one line and exit 2. Anything else is steelkit's own
# bug: its traceback, a line asking for a report, exit 1.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, atomic.WriteError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # no tqdm monitor thread: a daemon thread writing to stderr as a Ctrl-C ends the interpreter aborts it
    # ("could not acquire lock for <stderr> at interpreter shutdown", exit -6 instead of 130)
    tqdm.monitor_interval = 0

    def show(message, category, filename, lineno, file=None, line=None):  # steelkit's own lines, no source
        print(f"steelkit {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show
            return args.run(args)
    except USER_ERRORS as error:
        print(f"steelkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (run it again with --resume: it continues from the last finished epoch)" \
            if args.command == "train" else ""
        print(f"steelkit {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 (steelkit's own bug: shown whole, then asked to be reported)
        traceback.print_exc()
        print(f"steelkit {args.command}: {errors.REPORT}", file=sys.stderr)
        return 1
