"""Training configuration: one TOML file, sections mapping onto frozen dataclasses."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_runtime.frontend import FrontendConfig
from host_training.augment import AugmentConfig
from host_training.model import ModelConfig


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # empty: $EDGE_DETECT_DATA or ../shared/data/spoofmix
    train_split: str = "train"
    dev_split: str = "dev"
    max_files: int = 0  # 0 = all; small values make quick smoke runs
    # More corpora in the same layout whose train split joins the corpus's (e.g. spoofmix-extra):
    # every clip of them is a candidate for every epoch, like the corpus's own.
    train_roots: tuple[str, ...] = ()
    # Corpus whose ``dev_split`` selects the checkpoint and the card's threshold (empty: the
    # corpus root). A split of pages and systems unseen in training behaves like an evaluation
    # split; a dev split of the training sources rewards what they share.
    dev_root: str = ""
    # Per-epoch caps on clips per group (a spoofing system; a bona fide source, see
    # host_training.sampling): a few big systems or sources must not outvote hundreds of small
    # ones. 0 = no cap. A fresh random subset of a capped group is drawn every epoch.
    spoof_group_cap: int = 0
    bonafide_group_cap: int = 0
    # Weigh bona fide and spoofed clips alike within every speaker of an epoch
    # (host_training.sampling.speaker_balanced_weights), so a voice is not a label.
    speaker_balance: bool = False
    # Extra corpora whose train split is added to training (e.g. `edge-train synth` output).
    extra_train_roots: tuple[str, ...] = ()
    # Share of the extra clips drawn afresh each epoch (1.0 = all): twins of every bona fide
    # clip triple the data, and a random part of them per epoch keeps epochs affordable.
    extra_train_fraction: float = 1.0
    # Splits scored with the best checkpoint at the end of training, for the record only:
    # model selection uses dev alone.
    report_splits: tuple[str, ...] = ()


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    patience: int = 4  # epochs without dev EER improvement before stopping
    # From this epoch on, also keep the running mean of the weights after each epoch (SWA,
    # Izmailov et al. 2018) and score it on dev like a checkpoint: one run's epochs scatter as
    # much as seeds do, and their average sits in a flatter, better-generalising region. 0 = off.
    average_from_epoch: int = 0
    # Distillation: a JSON map {resolved audio path: teacher spoof probability} (e.g. from
    # `edge-train teacher`), mixed into each clip's target with this weight. Clips the map
    # lacks keep their hard label.
    teacher_scores: str = ""
    teacher_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight = {self.teacher_weight}: must be in [0, 1]")
        if self.teacher_weight > 0 and not self.teacher_scores:
            raise ValueError("teacher_weight > 0 needs teacher_scores (a JSON file)")


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    training: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"[{name}] unknown keys: {', '.join(unknown)}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


def _without_augment_rate(raw: dict[str, Any]) -> dict[str, Any]:
    """Runs from before augmentation took the front end's rate recorded their own
    ``augment.sample_rate``; it is accepted where it is the front end's, and dropped."""
    augment = raw.get("augment", {})
    if "sample_rate" not in augment:
        return raw
    frontend_rate = raw.get("frontend", {}).get("sample_rate", FrontendConfig().sample_rate)
    if augment["sample_rate"] != frontend_rate:
        raise ValueError(f"[augment] sample_rate {augment['sample_rate']} differs from "
                         f"[frontend] sample_rate {frontend_rate}; augmentation runs at the "
                         "front end's rate, remove it")
    return {**raw, "augment": {k: v for k, v in augment.items() if k != "sample_rate"}}


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    sections = {"data": DataConfig, "frontend": FrontendConfig, "model": ModelConfig,
                "augment": AugmentConfig, "training": OptimConfig}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ValueError(f"unknown sections: {', '.join(unknown)}")
    raw = _without_augment_rate(raw)
    return TrainConfig(**{name: _section(cls, raw.get(name, {}), name)
                          for name, cls in sections.items()})


def load_config(path: Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    with open(path, "rb") as handle:
        return config_from_dict(tomllib.load(handle))
