"""The datasets the kernels attach, made by the tool, each with its dataset-metadata.json for
``kaggle datasets create -p OUT`` (or a Kaggle Models instance for ``kaggle models instances create``):

- wheels: the packages Kaggle's image lacks (kernels/kaggle-image.txt), at requirements.txt's pins;
- encoder weights: the ImageNet weights of every encoder the presets name, from where smp 0.6 itself
  gets them (smp's hub repos at smp's pinned revisions; timm's repos for ``tu-`` encoders), one
  ``<encoder>.safetensors`` each, with a manifest (source repo, revision, sha256);
- models: trained outputs (best.pt, recipe.json, metrics.csv, oof.npz) and an inference config.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from steelkit.errors import UserError
from steelkit.recipe import PRESETS
from steelkit_kaggle import image
from steelkit_kaggle.settings import KERNELS

ROOT = KERNELS.parent
DATASETS_META = ROOT / "datasets-meta"
REQUIREMENTS = ROOT / "requirements.txt"


def dataset_metadata(out: Path, name: str, user: str) -> Path:
    """``out/dataset-metadata.json`` from datasets-meta/<name>, the id under ``user``."""
    meta = json.loads((DATASETS_META / name / "dataset-metadata.json").read_text())
    meta["id"] = meta["id"].replace("{user}", user)
    path = out / "dataset-metadata.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """requirements.txt's ``name==version`` lines, by normalised name."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def stage_wheels(out: Path, user: str, find_links: Path | None = None, echo=print) -> list[Path]:
    """Wheels of every package Kaggle's image lacks, at the versions requirements.txt pins, into ``out``.
    With ``find_links`` they come from that folder alone (no index): how the tests run it, offline."""
    out.mkdir(parents=True, exist_ok=True)
    pinned = pins()
    wanted = []
    for name in image.read_record().lacks:
        if name not in pinned:
            raise UserError(f"{REQUIREMENTS}: no pin for {name}, which {image.RECORD} says Kaggle's image lacks")
        wanted.append(f"{name}=={pinned[name]}")
    source = ["--no-index", "--find-links", str(find_links)] if find_links else []
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--disable-pip-version-check", "--quiet", "-d", str(out), *source, *wanted],
                          capture_output=True, text=True)
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: Location")]
        raise UserError(f"could not stage wheels {', '.join(wanted)} "
                        f"({'from ' + str(find_links) if find_links else 'from the package index'}): "
                        + " ".join(errors[-3:]))
    wheels = sorted(out.glob("*.whl"))
    for wheel in wheels:
        if not wheel.name.endswith("-none-any.whl"):
            echo(f"warning: {wheel.name} is built for one platform; Kaggle runs Linux x86_64, Python 3.12")
    dataset_metadata(out, "steelkit-wheels", user)
    return wheels


def encoder_source(encoder: str) -> tuple[str, str]:
    """(hub repo, revision) smp 0.6 would download ``encoder``'s ImageNet weights from."""
    if encoder.startswith("tu-"):
        import timm

        cfg = timm.models.get_pretrained_cfg(encoder[3:])
        if cfg is None or not cfg.hf_hub_id:
            raise UserError(f"encoder {encoder}: timm names no hub repo for its pretrained weights")
        return cfg.hf_hub_id, "main"
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {}).get("imagenet")
    if settings is None:
        raise UserError(f"encoder {encoder}: smp 0.6 has no ImageNet weights for it")
    return settings["repo_id"], settings.get("revision") or "main"


def preset_encoders() -> list[str]:
    """Every encoder the presets name, once."""
    return sorted({recipe.encoder for recipe in PRESETS.values()})


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_encoder_weights(out: Path, user: str, encoders: list[str] | None = None, echo=print) -> Path:
    """``out/<encoder>.safetensors`` for every encoder (default: the presets'), fetched through
    huggingface_hub (its cache first; ``HF_HUB_OFFLINE=1`` reads the cache alone), a manifest.json and
    dataset-metadata.json. Returns the manifest."""
    from huggingface_hub import hf_hub_download

    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for encoder in encoders or preset_encoders():
        repo, revision = encoder_source(encoder)
        try:
            path = Path(hf_hub_download(repo, filename="model.safetensors", revision=revision))
        except Exception as error:  # huggingface_hub raises many kinds: offline, missing, denied
            raise UserError(f"encoder {encoder}: cannot fetch {repo}@{revision}/model.safetensors "
                            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                            "run this on a machine with internet access") from None
        target = out / f"{encoder}.safetensors"
        shutil.copyfile(path, target)
        resolved = path.parent.name if path.parent.parent.name == "snapshots" else revision
        manifest.append({"encoder": encoder, "file": target.name, "repo": repo, "revision": resolved,
                         "sha256": sha256(target), "bytes": target.stat().st_size})
        echo(f"  {encoder}: {repo}@{resolved[:12]} -> {target.name}")
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    dataset_metadata(out, "steelkit-encoder-weights", user)
    return path


def stage_random_encoder_weights(out: Path, user: str, encoders: list[str], echo=print) -> Path:
    """``out/<encoder>.safetensors`` of randomly initialised encoders, in the layout ``stage_encoder_weights``
    writes (smp's encoder keys; timm's full model for ``tu-`` encoders), a manifest and dataset-metadata.json:
    the dress rehearsal's twin encoders, whose ImageNet weights cannot be downloaded here. Returns the manifest."""
    import segmentation_models_pytorch as smp
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for encoder in encoders:
        torch.manual_seed(0)
        if encoder.startswith("tu-"):
            import timm

            state = timm.create_model(encoder[3:], pretrained=False).state_dict()
        else:
            state = smp.encoders.get_encoder(encoder, weights=None).state_dict()
        target = out / f"{encoder}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(target))
        manifest.append({"encoder": encoder, "file": target.name, "repo": "random (rehearsal twin)",
                         "revision": "", "sha256": sha256(target), "bytes": target.stat().st_size})
        echo(f"  {encoder}: random weights -> {target.name}")
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    dataset_metadata(out, "steelkit-encoder-weights", user)
    return path


def stage_models(out: Path, sources: list[Path], user: str, inference_config: Path | None = None,
                 model_instance: str | None = None) -> Path:
    """A model dataset folder: each training output's best.pt, recipe.json, metrics.csv and oof.npz (for
    the threshold search), the inference config, and dataset-metadata.json; with ``model_instance``
    ("<owner>/<model>/pyTorch/<variation>"), also model-instance-metadata.json for
    ``kaggle models instances create -p OUT -r zip``."""
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if not (source / "best.pt").is_file():
            raise FileNotFoundError(f"{source}: no best.pt (not a steelkit training output)")
        target = out / source.name
        target.mkdir(exist_ok=True)
        for name in ("best.pt", "recipe.json", "metrics.csv", "oof.npz"):
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
    if inference_config:
        shutil.copy2(inference_config, out / "inference.json")
    dataset_metadata(out, "steelkit-models", user)
    if model_instance:
        parts = model_instance.replace("{user}", user).split("/")
        if len(parts) != 4 or parts[2] != "pyTorch":
            raise UserError(f"model instance {model_instance!r}: expected <owner>/<model>/pyTorch/<variation>")
        owner, model, framework, variation = parts
        (out / "model-instance-metadata.json").write_text(json.dumps({
            "ownerSlug": owner, "modelSlug": model, "instanceSlug": variation, "framework": framework,
            "overview": "steelkit checkpoints (best.pt + recipe.json per training output) and inference.json",
            "usage": "Attach as a model source; the steelkit submission notebook finds every best.pt under it.",
            "licenseName": "Apache 2.0", "fineTunable": False, "trainingData": [],
        }, indent=2) + "\n")
    return out
