"""steelkit's Kaggle side, as one command line with subcommands (as the kaggle CLI has them): build the
notebooks, rehearse them offline in a Kaggle-like environment, stage the datasets they attach, plan the
campaign's GPU hours, push.

    python build_kernel.py build [KERNEL ...]                      <out>/<slug>/ for `kaggle kernels push -p`
    python build_kernel.py run KERNEL --input DIR                  build, then run offline (DIR plays /kaggle/input)
    python build_kernel.py stage-wheels OUT [--find-links DIR]     the wheels of what Kaggle's image lacks
    python build_kernel.py stage-encoder-weights OUT               the presets' ImageNet encoder weights (online)
    python build_kernel.py stage-models OUT --from DIR [DIR ...]   trained models as a dataset or a Kaggle Model
    python build_kernel.py plan [KERNEL ...]                       GPU hours, parts and weeks, before any push
    python build_kernel.py push [--wait] [KERNEL ...]              push in dependency order, failures are errors
    python build_kernel.py status                                  kernels, GPU hours, quota, CV beside scores
    python build_kernel.py fetch [KERNEL ...]                      completed outputs into runs/<slug>/, checked
    python build_kernel.py submit [KERNEL] [-m MESSAGE]            submit, wait for the score, write the ledger
    python build_kernel.py rehearse [KERNEL ...]                   every kernel's tiny twin, offline, in order
    python build_kernel.py demo [--out DIR]                        a slice of the rehearsal, scored, with pictures

Each has its own --help. ``--rehearsal`` on the Kaggle commands swaps the campaign for its tiny twin as CPU
kernels of their own (steelkit_kaggle/twins.py). Kernels are declared in kernels/kernels.json (a small matrix, with
pseudo-label rounds); their sources are jupytext percent files in kernels/; Kaggle's image is recorded in
kernels/kaggle-image.txt. The logic lives in steelkit_kaggle/. A mistake (a bad option, kernel, file or
setting) gets one line naming it and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from steelkit import atomic, budget
from steelkit.errors import REPORT, UserError
from steelkit_kaggle import (
    campaign,
    demo,
    dress_rehearsal,
    fetch,
    kaggle_cli,
    notebooks,
    plan,
    push,
    rehearsal,
    report,
    settings,
    staging,
    submit,
    twins,
)

ROOT = Path(__file__).resolve().parent


def load(args) -> dict:
    """kernels.json, expanded and checked; with ``--rehearsal`` its tiny twin as CPU kernels of their own slugs
    (``twins.KAGGLE``: a subset of the real training images, no GPU quota), written to <out>/rehearsal/."""
    if getattr(args, "rehearsal", False):
        return twins.load(args.out / "rehearsal", twins.KAGGLE, args.settings)
    return plan.load(args.settings, budget.read_rates(args.rates) if getattr(args, "rates", None) else None)


def find(config: dict, name: str) -> dict:
    """A kernel by slug or title; in a twin campaign, the real campaign's names find their twins."""
    if config["campaign"].get("twin"):
        name = twins.twin_title(name)
    return settings.find(config, name)


def chosen(config: dict, names: list[str], gpu_only: bool = False) -> list[dict]:
    """The kernels named (slugs or titles), else every kernel (every GPU kernel with ``gpu_only``, or every
    kernel of a twin campaign, which has none)."""
    if names:
        return [find(config, name) for name in names]
    return [k for k in config["kernels"] if k["gpu"] or not gpu_only or config["campaign"].get("twin")]


def cmd_build(args) -> int:
    config = load(args)
    for kernel in chosen(config, args.kernels):
        print(f"built {notebooks.build(kernel, config, args.user, args.out)}")
    return 0


def cmd_run(args) -> int:
    config = load(args)
    folder = notebooks.build(find(config, args.kernel), config, args.user, args.out)
    result = rehearsal.run(folder, args.input)
    print(f"{folder.name}: ran offline in {result['seconds']:.0f} s; outputs in {result['working']}")
    return 0


def cmd_stage_wheels(args) -> int:
    wheels = staging.stage_wheels(args.out_dir, args.user, args.find_links)
    print(f"staged {len(wheels)} wheels in {args.out_dir}: {', '.join(w.name for w in wheels)}\n"
          f"next: kaggle datasets create -p {args.out_dir}")
    return 0


def cmd_stage_encoder_weights(args) -> int:
    manifest = staging.stage_encoder_weights(args.out_dir, args.user)
    print(f"staged encoder weights; manifest {manifest}\nnext: kaggle datasets create -p {args.out_dir}")
    return 0


def cmd_stage_models(args) -> int:
    out = staging.stage_models(args.out_dir, args.sources, args.user, args.inference_config, args.model_instance)
    print(f"staged {out}\nnext: kaggle datasets create -p {out}"
          + (f"  (or: kaggle models instances create -p {out} -r zip)" if args.model_instance else ""))
    return 0


def cmd_plan(args) -> int:
    config = load(args)
    quota = {"used": 0.0, "remaining": args.quota_hours, "total": args.quota_hours, "refresh": ""} \
        if args.quota_hours else kaggle_cli.quota()
    result = plan.plan(config, chosen(config, args.kernels, gpu_only=True), quota, args.sessions)
    print(plan.format_plan(result))
    return 0


def cmd_push(args) -> int:
    config = load(args)
    order = settings.push_order(config, chosen(config, args.kernels))
    force = {find(config, name)["slug"] for name in args.force}
    record = campaign.load(args.out)
    needed = sum(plan.gpu_hours(kernel, config) for kernel in order
                 if kernel["slug"] in force or not campaign.is_complete(record["kernels"].get(kernel["slug"], {})))
    quota = kaggle_cli.quota() if needed else None
    if quota and needed > quota["remaining"] and not args.over_quota:
        raise kaggle_cli.KaggleError(f"these kernels need about {needed:.1f} GPU hours and the weekly quota has "
                                     f"{quota['remaining']:.1f} h left (it refreshes {quota['refresh'] or 'weekly'}); "
                                     "push fewer kernels (see `plan`), wait, or --over-quota")
    built = [(kernel, notebooks.build(kernel, config, args.user, args.out)) for kernel in order]
    sources = {kernel["slug"]: [d["slug"] for d in settings.dependencies(config, kernel)] for kernel in order}
    then = None if args.no_fetch else lambda kernel, item: fetch.recorded(kernel, item, args.user, args.runs)
    push.push(built, args.user, args.out, sources, wait=args.wait, poll_seconds=args.poll_seconds, force=force,
              then=then, stale_seconds=args.stale_minutes * 60,
              confirmed={find(config, name)["slug"] for name in args.confirm})
    return 0


def cmd_fetch(args) -> int:
    config = load(args)
    record = campaign.load(args.out)
    names = args.kernels or [s for s, item in record["kernels"].items() if campaign.is_complete(item)]
    if not names:
        raise UserError(f"no COMPLETE kernel in {args.out / campaign.RECORD}; name the kernels to fetch")
    for name in names:
        kernel = find(config, name)
        item = record["kernels"].get(kernel["slug"])
        if not item:
            fetch.fetch(kernel, args.user, args.runs)
            continue
        item.pop("fetched", None)  # fetched anew: the latest completed version's files
        try:
            fetch.recorded(kernel, item, args.user, args.runs)
        finally:
            campaign.save(args.out, record)
    return 0


def cmd_submit(args) -> int:
    config = load(args)
    final = [k for k in config["kernels"] if k["source"] == "submission.py"][-1]
    kernel = find(config, args.kernel) if args.kernel else final
    submit.submit(config, kernel, args.user, args.out, args.runs, args.message, wait=not args.no_wait,
                  poll_seconds=args.poll_seconds, timeout_seconds=args.timeout_minutes * 60)
    return 0


def cmd_status(args) -> int:
    config = load(args)
    text = campaign.format_status(config, campaign.load(args.out), campaign.read_ledger(args.out), kaggle_cli.quota())
    print(text)
    print(f"page: {report.campaign_page(args.out / 'campaign.html', text, campaign.read_ledger(args.out))}")
    return 0


def cmd_rehearse(args) -> int:
    return dress_rehearsal.main(args.out or ROOT / "rehearsal", args.kernels, layout=args.input_layout,
                                wheels_from=args.find_links)


def cmd_demo(args) -> int:
    return demo.demo(args.out or ROOT / "demo-output", layout=args.input_layout, wheels_from=args.find_links)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--user", default=os.environ.get("KAGGLE_USERNAME", ""),
                        help="Kaggle user (default $KAGGLE_USERNAME)")
    common.add_argument("--out", type=Path, default=ROOT / "build",
                        help="where the built kernels and the campaign record go")
    common.add_argument("--settings", type=Path, default=settings.SETTINGS, help="the kernels matrix (kernels.json)")
    common.add_argument("--rehearsal", action="store_true",
                        help="the campaign's tiny twin as CPU kernels of their own ('rehearse ...' titles), training "
                             "on a subset of the real images: proves the wiring on Kaggle for no GPU quota")
    common.add_argument("--rates", type=Path, metavar="GPU_CHECK_JSON",
                        help="GPU throughputs measured by `python -m tests.gpu` (carried to a T4) instead of the "
                             "estimated ones: in every kernel's hours and in the split into sessions")

    def add(name: str, run, help_text: str, parents=(common,)):
        p = sub.add_parser(name, help=help_text, description=help_text, parents=list(parents))
        p.set_defaults(run=run)
        return p

    p = add("build", cmd_build, "build <out>/<slug>/ (notebook + kernel-metadata.json) for `kaggle kernels push -p`")
    p.add_argument("kernels", nargs="*", help="slugs or titles (default: all)")
    p = add("run", cmd_run, "build one kernel and execute it offline in .venv-kaggle/")
    p.add_argument("kernel", help="a slug or title")
    p.add_argument("--input", type=Path, required=True, help="the folder that plays /kaggle/input")
    for name, run, text in (("stage-wheels", cmd_stage_wheels, "the wheels of what Kaggle's image lacks"),
                            ("stage-encoder-weights", cmd_stage_encoder_weights,
                             "the presets' ImageNet encoder weights through huggingface_hub (online)"),
                            ("stage-models", cmd_stage_models, "trained models as a dataset or a Kaggle Model")):
        p = add(name, run, text)
        p.add_argument("out_dir", type=Path, metavar="OUT", help="the dataset folder to write")
        if name == "stage-wheels":
            p.add_argument("--find-links", type=Path, metavar="DIR", help="take wheels from DIR alone (no index)")
        if name == "stage-models":
            p.add_argument("--from", dest="sources", nargs="+", type=Path, required=True,
                           help="training outputs (folders holding best.pt)")
            p.add_argument("--inference-config", type=Path)
            p.add_argument("--model-instance", metavar="OWNER/MODEL/pyTorch/VARIATION",
                           help="also write model-instance-metadata.json")
    p = add("plan", cmd_plan, "the campaign in dependency order: GPU hours, parts, the weekly quota, the weeks")
    p.add_argument("kernels", nargs="*", help="slugs or titles (default: every GPU kernel)")
    p.add_argument("--quota-hours", type=float, help="the weekly GPU quota (default: `kaggle quota`, else 30 h)")
    p.add_argument("--sessions", type=int, help="GPU sessions Kaggle runs at once (default: kernels.json's)")
    p = add("push", cmd_push, "build, then push with the kaggle CLI in dependency order")
    p.add_argument("kernels", nargs="*", help="slugs or titles (default: all)")
    p.add_argument("--wait", action="store_true", help="wait for each attached kernel to complete")
    p.add_argument("--poll-seconds", type=float, default=60, help="seconds between status polls (default 60)")
    p.add_argument("--over-quota", action="store_true",
                   help="push even when `kaggle quota` says the week's GPU hours are not enough")
    p.add_argument("--force", action="append", default=[], metavar="KERNEL",
                   help="push this kernel again even if COMPLETE (repeat for several)")
    p.add_argument("--confirm", action="append", default=[], metavar="KERNEL",
                   help="believe this kernel's end state: its recorded version was seen to run on Kaggle's page")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="with --wait: where outputs are fetched to")
    p.add_argument("--no-fetch", action="store_true", help="with --wait: leave the outputs on Kaggle")
    p.add_argument("--stale-minutes", type=float, default=30,
                   help="how long an end state not seen running may stand before it is an error (default 30)")
    p = add("status", cmd_status, "the campaign's kernels, GPU hours used, the quota, and every submission's local "
            "CV beside its scores (also <out>/campaign.html)")
    p = add("fetch", cmd_fetch, "download completed kernels' outputs into runs/<slug>/ and check their files")
    p.add_argument("kernels", nargs="*", help="slugs or titles (default: every COMPLETE kernel in the record)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs")
    p = add("submit", cmd_submit, "submit a submission kernel's recorded COMPLETE version and wait for its score")
    p.add_argument("kernel", nargs="?", help="a submission kernel (default: the final one)")
    p.add_argument("-m", "--message", default="", help="default: the kernel, its version, members and local CV")
    p.add_argument("--runs", type=Path, default=ROOT / "runs")
    p.add_argument("--no-wait", action="store_true", help="return once submitted")
    p.add_argument("--poll-seconds", type=float, default=60)
    p.add_argument("--timeout-minutes", type=float, default=180, help="stop waiting for the score after this")
    for name, run, text, default in (
            ("rehearse", cmd_rehearse, "every kernel of kernels.json as its tiny twin, offline in .venv-kaggle, in "
             "dependency order, on a synthetic competition; a rerun goes on after the last kernel that completed",
             "rehearsal/"),
            ("demo", cmd_demo, "a slice of the rehearsal (one classifier, one segmenter, two rounds), scored, "
             "with the report page and pictures", "demo-output/")):
        p = add(name, run, text, parents=())
        if name == "rehearse":
            p.add_argument("kernels", nargs="*", help="slugs or titles (real or twin; default: all), with what "
                                                      "they attach")
        p.add_argument("--out", type=Path, help=f"default: {default}")
        p.add_argument("--input-layout", choices=rehearsal.LAYOUTS, default="slug",
                       help="mount inputs at <input>/<slug> or <input>/datasets/<owner>/<slug>")
        p.add_argument("--find-links", type=Path, metavar="DIR", help="take the wheels from DIR alone (no index)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # each kernel's line as it ends, also into a log file
    if getattr(args, "user", None) == "":
        if args.command in ("push", "fetch", "submit", "status", "stage-wheels", "stage-encoder-weights",
                            "stage-models"):
            print("no --user or KAGGLE_USERNAME: ids use 'steelkit-user'", file=sys.stderr)
        args.user = "steelkit-user"
    try:
        return args.run(args)
    except kaggle_cli.KaggleError as error:
        print(f"build_kernel: {error}", file=sys.stderr)
        return 1
    except (UserError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
            atomic.WriteError) as error:
        print(f"build_kernel: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("build_kernel: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 (steelkit's own bug: shown whole, then asked to be reported)
        traceback.print_exc()
        print(f"build_kernel: {REPORT}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
