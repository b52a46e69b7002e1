"""Training configuration: one TOML file, sections mapping onto frozen dataclasses."""

from __future__ import annotations

import math
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


LR_SCHEDULES = ("constant", "cosine")


def epoch_learning_rate(training: OptimConfig, epoch: int) -> float:
    """The learning rate of 1-based ``epoch``: set per epoch, so a resumed run continues it."""
    if training.lr_schedule == "constant":
        return training.learning_rate
    return training.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1)
                                                          / training.epochs))


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    patience: int = 4  # epochs without dev EER improvement before stopping
    # "constant" keeps learning_rate; "cosine" lowers it each epoch along half a cosine to
    # nearly 0 at the last epoch (Loshchilov & Hutter 2017), so a long run ends on small steps
    # instead of wandering at the starting rate.
    lr_schedule: str = "constant"
    # From this epoch on, also keep the running mean of the weights after each epoch (SWA,
    # Izmailov et al. 2018) and score it on dev like a checkpoint: one run's epochs scatter as
    # much as seeds do, and their average sits in a flatter, better-generalising region. 0 = off.
    average_from_epoch: int = 0
    # Distillation: a JSON map {resolved audio path: teacher spoof probability} (e.g. from
    # `edge-train teacher`), mixed into each clip's target with this weight. Clips the map
    # lacks keep their hard label.
    teacher_scores: str = ""
    teacher_weight: float = 0.0
    # Targets pulled toward 0.5 by this share (0 and 1 become ls/2 and 1 - ls/2): the network
    # stops pushing logits of easy training clips ever further, which unseen systems then cross.
    label_smoothing: float = 0.0
    # Decoupled weight decay (AdamW, Loshchilov & Hutter 2019) on the kernels (not biases or
    # batch-norm scales): pulls every weight toward 0 a little each step, so no few weights
    # grow to carry a cue of the training systems alone. 0 = plain Adam.
    weight_decay: float = 0.0
    # Sharpness-aware minimisation (host_training.sam): each step applies the gradient taken at
    # weights this far (L2) up the loss, so training settles in flat minima, which carried
    # better to unseen datasets in anti-spoofing; a second pass per step. 0 = plain steps.
    sam_rho: float = 0.0
    # Source-adversarial training (host_training.source_adversary): a head learns to guess each
    # bona fide clip's source from the detector's embedding, and the embedding is trained, with
    # this weight, to leave it guessing, so it unlearns where real speech was recorded. 0 = off.
    source_adversary_weight: float = 0.0
    # Within-source ranking (host_training.source_ranking): each batch also pays, with this
    # weight, the logistic ranking loss of every (bona fide, spoof) pair of one source, so a
    # source's channel stops being a cue for either class. 0 = off.
    source_ranking_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule = {self.lr_schedule!r}: must be one of "
                             f"{', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight = {self.teacher_weight}: must be in [0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing = {self.label_smoothing}: must be in [0, 1)")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay = {self.weight_decay}: must be 0 or more")
        if self.sam_rho < 0:
            raise ValueError(f"sam_rho = {self.sam_rho}: must be 0 or more")
        if self.source_adversary_weight < 0:
            raise ValueError(f"source_adversary_weight = {self.source_adversary_weight}: "
                             "must be 0 or more")
        if self.source_ranking_weight < 0:
            raise ValueError(f"source_ranking_weight = {self.source_ranking_weight}: "
                             "must be 0 or more")
        if self.source_adversary_weight and self.source_ranking_weight:
            raise ValueError("source_adversary_weight and source_ranking_weight do not go "
                             "together: each reads its own source column")
        if self.teacher_weight > 0 and not self.teacher_scores:
            raise ValueError("teacher_weight > 0 needs teacher_scores (a JSON file)")


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    training: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.training.source_adversary_weight and (
                self.model.architecture != "edge" or self.model.head != "sigmoid"):
            raise ValueError("source_adversary_weight needs [model] architecture = \"edge\" "
                             "and head = \"sigmoid\" (the head reads its dense embedding)")
        if self.training.source_adversary_weight and self.augment.mixup_prob:
            raise ValueError("source_adversary_weight and mixup_prob do not go together: "
                             "mixup would blend two clips' sources")
        if self.training.source_ranking_weight and self.model.head != "sigmoid":
            raise ValueError("source_ranking_weight needs [model] head = \"sigmoid\" (it ranks "
                             "the logits of the spoof probability)")
        if self.training.source_ranking_weight and self.augment.mixup_prob:
            raise ValueError("source_ranking_weight and mixup_prob do not go together: "
                             "mixup would blend two clips' sources")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# A config may start from another: ``base = "default.toml"`` (relative to the file naming it);
# its keys are overridden section by section, key by key. The run folder records the resolved
# config, so a later change to the base never changes what a finished run was.
BASE_KEY = "base"


def _checked(value: Any, annotation: str, where: str) -> Any:
    """``value`` as the field declared as ``annotation`` takes it (TOML lists become tuples);
    a wrong type is refused here rather than read as truthy or silently coerced."""
    if annotation == "bool":
        ok = isinstance(value, bool)
    elif annotation == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation == "str":
        ok = isinstance(value, str)
    elif annotation.startswith("tuple"):
        ok = isinstance(value, list | tuple)
        value = tuple(value) if ok else value
    else:  # named types (literals) are checked by their dataclass
        ok = True
    if not ok:
        raise ValueError(f"{where} = {value!r}: expected {annotation}")
    return value


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"[{name}] unknown keys: {', '.join(unknown)}")
    return cls(**{key: _checked(value, _annotation(known[key].type), f"[{name}] {key}")
                  for key, value in values.items()})


def _annotation(declared: Any) -> str:
    return declared if isinstance(declared, str) else getattr(declared, "__name__", "")


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


def _read_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path.name}: base configs form a cycle")
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    base = raw.pop(BASE_KEY, None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ValueError(f"{path.name}: {BASE_KEY} must be a file name")
    merged = _read_with_bases(path.parent / base, (*seen, path))
    for name, values in raw.items():
        if isinstance(values, dict) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **values}
        else:
            merged[name] = values
    return merged


def load_config(path: Path | None) -> TrainConfig:
    if path is None:
        return TrainConfig()
    return config_from_dict(_read_with_bases(Path(path)))
