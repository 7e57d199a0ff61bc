"""The Bento that ships: the champion copied from the MLflow registry into BentoML's model store, the service
code and its locked requirements packed into one Bento, and the served model read back from inside it.

`lapse build` calls `import_model` then `build_bento`. A BentoML model named like the registered model
holds the scorer files (the booster and model_meta.json) and, as metadata, the registry version and
alias it came from. Inside a Bento the service loads that model (`packed_model`) and needs no MLflow store.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
import mlflow.artifacts
import yaml

from models.loaded import alias_version, use_store
from models.metadata import META_FILE, read_metadata

BENTOFILE = "bentofile.yaml"
# The module that creates the BentoML model (kept in its metadata, so `bentoml models list` says who made it).
MODULE = "lapse.serving.bento"


@dataclass(frozen=True)
class PackedModel:
    """A model in BentoML's model store made by `import_model`: where its scorer files are, and its version."""

    tag: str
    folder: Path
    version: str
    alias: str


def _bento_file(module_file: str | Path = __file__) -> Path:
    """Where bento.yaml is if this code runs from a built Bento (its `src/` folder sits beside it)."""
    return Path(module_file).resolve().parents[2] / "bento.yaml"


def in_bento(module_file: str | Path = __file__) -> bool:
    """Whether this code runs from a built Bento."""
    return _bento_file(module_file).is_file()


def import_model(tracking_uri: str, model_name: str, alias: str) -> PackedModel:
    """Copy the version `model_name@alias` points at into BentoML's model store (BENTOML_HOME), with its metadata."""
    version = alias_version(tracking_uri, model_name, alias)
    use_store(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="lapse-bento-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=tmp, tracking_uri=tracking_uri,
            registry_uri=tracking_uri))
        found = sorted(local.rglob(META_FILE))
        if not found:
            raise FileNotFoundError(f"{model_name} version {version}: no {META_FILE} among its artifacts")
        scorer_dir = found[0].parent
        metadata = read_metadata(found[0], f"models:/{model_name}/{version}")
        with bentoml.models.create(
            model_name, module=MODULE,
            labels={"registered_model": model_name, "alias": alias, "version": version},
            metadata={"registry_version": version, "alias": alias, "features": len(metadata.feature_names),
                      "horizon_days": metadata.label.horizon_days},
        ) as model:
            for item in scorer_dir.iterdir():
                if item.is_file():
                    shutil.copy2(item, Path(model.path) / item.name)
    return PackedModel(str(model.tag), Path(model.path), version, alias)


def packed_model(model_name: str, module_file: str | Path = __file__) -> PackedModel:
    """The model named `model_name` that the Bento this code runs from was built with."""
    info = yaml.safe_load(_bento_file(module_file).read_text())
    tags = [m["tag"] for m in info.get("models") or () if str(m["tag"]).split(":")[0] == model_name]
    if not tags:
        raise LookupError(f"the Bento holds no model named {model_name!r}")
    model = bentoml.models.get(tags[0])
    return PackedModel(str(model.tag), Path(model.path), str(model.info.metadata["registry_version"]),
                       str(model.info.metadata["alias"]))


def build_bento(model: PackedModel, project: str | Path, version: str | None = None) -> bentoml.Bento:
    """Build the Bento that the project's bentofile.yaml describes; its model (`lapse-dropout:latest` there)
    must be `model`, the one just imported."""
    project = Path(project)
    bento = bentoml.bentos.build_bentofile(str(project / BENTOFILE), build_ctx=str(project), version=version)
    packed = [str(m.tag) for m in bento.info.models]
    if packed != [model.tag]:
        bentoml.bentos.delete(str(bento.tag))
        raise RuntimeError(f"the Bento would hold model(s) {', '.join(packed) or 'none'}, not {model.tag}: "
                           f"check the models list in {BENTOFILE}")
    return bento
