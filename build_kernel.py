"""steelkit's Kaggle side, as one command line: build the notebooks, rehearse them offline in a Kaggle-like
environment, stage the datasets they attach, push them.

    python build_kernel.py [--user U] [--out DIR] [KERNEL ...]        build <out>/<slug>/ for `kaggle kernels push -p`
    python build_kernel.py --run KERNEL --input DIR [--input-layout slug|owner]
                                                                      build, then run offline (DIR plays /kaggle/input)
    python build_kernel.py --stage-wheels OUT [--find-links DIR]      the wheels of what Kaggle's image lacks
    python build_kernel.py --stage-encoder-weights OUT                the presets' ImageNet encoder weights (online)
    python build_kernel.py --stage-models OUT --from DIR [DIR ...] [--inference-config F] [--model-instance M]
    python build_kernel.py --push [--wait] [--user U] [KERNEL ...]    push in dependency order, failures are errors
    python build_kernel.py --demo [--out DIR]                         the whole chain on a synthetic competition

Kernels are declared in kernels/kernels.json (a small matrix); their sources are jupytext percent files in
kernels/; Kaggle's image is recorded in kernels/kaggle-image.txt. The logic lives in steelkit_kaggle/.
A mistake (a bad option, kernel, file or setting) gets one line naming it and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from steelkit_kaggle import demo, notebooks, push, rehearsal, settings, staging

ROOT = Path(__file__).resolve().parent


def build_all(names: list[str], config: dict, user: str, out: Path) -> list[tuple[dict, Path]]:
    chosen = [settings.find(config, name) for name in names] or config["kernels"]
    return [(kernel, notebooks.build(kernel, config, user, out)) for kernel in chosen]


def command(args) -> int:
    user = args.user or "steelkit-user"
    if args.demo:
        return demo.demo(args.out if args.out != ROOT / "build" else ROOT / "demo-output", layout=args.input_layout,
                         wheels_from=args.find_links)
    if args.stage_wheels:
        wheels = staging.stage_wheels(args.stage_wheels, user, args.find_links)
        print(f"staged {len(wheels)} wheels in {args.stage_wheels}: {', '.join(w.name for w in wheels)}\n"
              f"next: kaggle datasets create -p {args.stage_wheels}")
        return 0
    if args.stage_encoder_weights:
        manifest = staging.stage_encoder_weights(args.stage_encoder_weights, user)
        print(f"staged encoder weights; manifest {manifest}\n"
              f"next: kaggle datasets create -p {args.stage_encoder_weights}")
        return 0
    if args.stage_models:
        out = staging.stage_models(args.stage_models, args.sources, user, args.inference_config, args.model_instance)
        print(f"staged {out}\nnext: kaggle datasets create -p {out}"
              + (f"  (or: kaggle models instances create -p {out} -r zip)" if args.model_instance else ""))
        return 0
    config = settings.load()
    if args.run:
        if not args.input:
            raise ValueError("--run needs --input DIR (the folder that plays /kaggle/input)")
        folder = notebooks.build(settings.find(config, args.run), config, user, args.out)
        result = rehearsal.run(folder, args.input)
        print(f"{folder.name}: ran offline in {result['seconds']:.0f} s; outputs in {result['working']}")
        return 0
    if args.push:
        chosen = settings.push_order(config, [settings.find(config, n) for n in args.kernels] or config["kernels"])
        built = [(kernel, notebooks.build(kernel, config, user, args.out)) for kernel in chosen]
        attached = {source["slug"] for kernel in chosen for source in settings.dependencies(config, kernel)}
        push.push(built, user, attached, wait=args.wait, poll_seconds=args.poll_seconds)
        return 0
    for _, folder in build_all(args.kernels, config, user, args.out):
        print(f"built {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernels", nargs="*", help="slugs or titles (default: all)")
    parser.add_argument("--user", default=os.environ.get("KAGGLE_USERNAME", ""),
                        help="Kaggle user (default $KAGGLE_USERNAME)")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--run", metavar="KERNEL", help="build and execute this kernel offline")
    parser.add_argument("--input", type=Path, help="with --run: the folder that plays /kaggle/input")
    parser.add_argument("--input-layout", choices=rehearsal.LAYOUTS, default="slug",
                        help="with --demo: mount inputs at <input>/<slug> or <input>/datasets/<owner>/<slug>")
    parser.add_argument("--stage-wheels", type=Path, metavar="OUT")
    parser.add_argument("--find-links", type=Path, metavar="DIR", help="take wheels from DIR alone (no index)")
    parser.add_argument("--stage-encoder-weights", type=Path, metavar="OUT")
    parser.add_argument("--stage-models", type=Path, metavar="OUT")
    parser.add_argument("--from", dest="sources", nargs="+", type=Path, default=[])
    parser.add_argument("--inference-config", type=Path)
    parser.add_argument("--model-instance", metavar="OWNER/MODEL/pyTorch/VARIATION",
                        help="with --stage-models: also write model-instance-metadata.json")
    parser.add_argument("--push", action="store_true", help="build, then push with the kaggle CLI")
    parser.add_argument("--wait", action="store_true", help="with --push: wait for each attached kernel to complete")
    parser.add_argument("--poll-seconds", type=float, default=60, help=argparse.SUPPRESS)
    parser.add_argument("--demo", action="store_true", help="the offline rehearsal on a synthetic competition")
    args = parser.parse_args(argv)
    if not args.user and (args.push or args.stage_wheels or args.stage_encoder_weights or args.stage_models):
        print("no --user or KAGGLE_USERNAME: ids use 'steelkit-user'", file=sys.stderr)
    try:
        return command(args)
    except push.PushError as error:
        print(f"build_kernel: {error}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"build_kernel: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("build_kernel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
