"""The training loop: plain PyTorch, read top to bottom.

:func:`train` sets up the process (device, distributed), the data, the model and a
:class:`TrainState` (model, EMA, optimiser, schedule, gradient scaler, epoch, best score), then
calls :func:`fit`, the one loop, which runs the epochs. Each feature is one named step: mixed
precision (autocast and a gradient scaler for fp16), channels_last, ``torch.compile``, an EMA
of the weights, gradient clipping, label smoothing and mixup/cutmix, DDP, checkpoints and
resume. Quantization-aware training is the same loop between :func:`~mobilenet.export.qat.prepare_qat`
and :func:`~mobilenet.export.qat.convert_qat`.

Determinism: the model is initialised from ``seed``; each epoch's randomness (data order,
augmentation, dropout) is seeded from ``(seed, epoch, rank)``, so resuming after epoch N
continues exactly as a run that never stopped.

Crashes: an epoch ends on disk in a fixed order (``best.*`` if it improved, its ``metrics.jsonl``
line, ``last.safetensors``, then ``last.state.pt``, which commits it), each file atomically.
A process killed at any instant leaves the last committed epoch readable; ``--resume`` (or a
``torchrun --max-restarts`` restart) clears interrupted writes, drops metric lines of epochs
after the commit and continues from it; a run killed before its first checkpoint starts afresh.
A write that fails (disk full, permission lost) stops every process with one message naming
the file; the last committed epoch stays intact.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset

from mobilenet.card import ModelCard
from mobilenet.data import DataBundle, build_batch_mix, eval_transform, load_data, train_transform
from mobilenet.data.transforms import BatchMix
from mobilenet.errors import ConfigError, MobileNetError, WeightsError
from mobilenet.evaluate import EvalResult, autocast, evaluate
from mobilenet.export.qat import INT8_FILE, convert_qat, prepare_qat
from mobilenet.fileio import append_line, atomic_write_text, describe_failure, remove_temporaries
from mobilenet.load import load, run_file
from mobilenet.models import MobileNet, create_model
from mobilenet.training import checkpoint as ckpt
from mobilenet.training.batchnorm import equalise_filter_norms, fix_bn_statistics, renormalise_batchnorm
from mobilenet.training.config import TrainConfig
from mobilenet.training.distributed import (
    GlobalBatchSampler,
    Runtime,
    all_reduce_sum,
    all_succeeded,
    broadcast_buffers,
    convert_sync_batchnorm,
    setup,
)
from mobilenet.training.distributed import teardown as leave_process_group
from mobilenet.training.optim import build_optimizer, build_scheduler

RENORMALISE_BATCHES = 20
"""Training batches whose statistics pretrained BN layers take before fine-tuning with batch statistics."""


class TrainingError(MobileNetError):
    """A run that cannot go on (loss became NaN, out of memory, unwritable output)."""


@dataclass
class TrainState:
    """Everything that changes while training, and what ``--resume`` restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None = None
    epoch: int = 0
    """Epochs completed."""
    best_top1: float = -1.0

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only (it loads with ``torch.load(weights_only=True)``)."""
        return {
            "epoch": self.epoch,
            "step": self.scheduler.last_epoch,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_top1": self.best_top1,
            "rng": _rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` saved."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best_top1 = int(state["epoch"]), float(state["best_top1"])


@dataclass
class Loop:
    """What stays fixed while :func:`fit` runs: the settings, the process, the batches."""

    config: TrainConfig
    rt: Runtime
    loader: DataLoader
    sampler: GlobalBatchSampler
    steps_per_epoch: int
    val_loader: DataLoader | None
    classes: list[str]
    mix: BatchMix | None = None
    forward_model: nn.Module | None = None
    """What computes the forward pass: the model wrapped by DDP / compile (default: the model)."""
    train_mode: bool = True
    """False keeps the model in eval mode while training (QAT: frozen BN statistics, no dropout)."""


@dataclass
class Checkpoints:
    """Where and how :func:`fit` saves ``last`` and ``best``: the run folder, the model card, the configuration."""

    out: Path
    card: ModelCard
    config: TrainConfig

    def save(self, tag: str, weights: nn.Module, source: str, state: TrainState) -> None:
        """``<tag>.safetensors`` (``weights``, which are the ``source`` candidate) and ``<tag>.state.pt``."""
        card = self.card if tag == "last" else self.card.replace(extra={**self.card.extra, "weights_of": source})
        resume = {**state.state_dict(), "config": json.loads(self.config.to_json())}
        ckpt.save_checkpoint(self.out, tag, _unwrap(weights), card, resume)


@dataclass
class EpochStats:
    """What one pass over the training data measured (this process's share, then reduced)."""

    loss: float
    top1: float
    images: int
    seconds: float
    data_seconds: float
    """Of ``seconds``, the time spent waiting for the data loader (this process's)."""


def fit(state: TrainState, loop: Loop, checkpoints: Checkpoints | None = None) -> dict[str, Any]:
    """Train from ``state.epoch`` to ``loop.config.epochs`` (or ``stop_after`` epochs); returns the last record.

    After each epoch the validation split (if any) is evaluated with the model and the EMA, and
    the epoch is committed (:func:`_commit_epoch`): its ``metrics.jsonl`` line and, with
    ``checkpoints``, ``best`` (when the better of model and EMA beat every earlier epoch) and ``last``.
    """
    config, rt = loop.config, loop.rt
    logger = _Logger(Path(config.out), rt.is_main)
    record: dict[str, Any] = {}
    start_epoch = state.epoch
    if start_epoch >= config.epochs and rt.is_main:
        print(f"{config.out} has trained all {config.epochs} epochs: nothing to do (raise --epochs)", flush=True)
    for epoch in range(start_epoch, config.epochs):
        _seed_epoch(config.seed, epoch, rt.rank, loop.loader)
        loop.sampler.set_epoch(epoch)
        lr = state.optimizer.param_groups[0]["lr"]
        stats = _train_epoch(state, loop, epoch)
        if state.ema is not None:
            broadcast_buffers(state.ema)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": stats.loss, "train_top1": stats.top1}
        candidates = {"model": state.model}
        if loop.val_loader is not None:
            record.update(_val_record("val", _evaluate(state.model, loop)))
            if state.ema is not None:
                record.update(_val_record("ema_val", _evaluate(state.ema.module, loop)))
                candidates["ema"] = state.ema.module
        record.update(images_per_s=stats.images / stats.seconds, seconds=stats.seconds, data_seconds=stats.data_seconds)
        source, score = _best_candidate(record, candidates)
        best = candidates[source] if score > state.best_top1 else None
        state.epoch, state.best_top1 = epoch + 1, max(state.best_top1, score)
        _commit_epoch(state, record, (source, best), logger, checkpoints, loop)
        if config.stop_after is not None and epoch + 1 - start_epoch >= config.stop_after and epoch + 1 < config.epochs:
            if rt.is_main:
                print(
                    f"stopped after epoch {epoch + 1} (--stop-after); continue with --resume {config.out}", flush=True
                )
            break
    logger.close()
    return record


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or continue training) as ``config`` says; returns the last epoch's metrics.

    With ``config.qat`` the float ``--weights`` are trained quantization-aware and written as
    ``<out>/model_int8.pt2``.
    """
    config.validate()
    runtime = setup(config.device)
    try:
        return _train_qat(config, runtime) if config.qat else _train(config, runtime, resume)
    finally:
        leave_process_group()


def resume_config(folder: str | Path, epochs: int | None = None) -> TrainConfig:
    """The saved configuration of a run, with a new epoch count if given."""
    path = run_file(folder, "config.json")
    if not path.is_file():
        raise ckpt.CheckpointError(
            f"cannot resume: {path} does not exist (not a training --out folder, or one whose run stopped "
            "before it began): start afresh with the original command"
        )
    config = TrainConfig.from_json(path)
    if epochs is not None:
        config.epochs = epochs
    config.stop_after = None
    return config


def _train(config: TrainConfig, rt: Runtime, resume: bool) -> dict[str, Any]:
    out = Path(config.out)
    requested = resume or _elastic_restart(out, config, rt)
    if rt.is_main:
        _prepare_output(out, config, requested)
    resume = requested and ckpt.state_path(out).is_file()  # none yet: killed before its first checkpoint
    if requested and rt.is_main:
        print(f"resuming {out} from its last checkpoint" if resume else f"{out} holds no checkpoint: starting afresh")
    pretrained = _load_pretrained(config) if config.weights else None
    data = load_training_data(
        config,
        config.resolution or (pretrained[1].input_size if pretrained else None),
        config.in_chans or (pretrained[0].in_chans if pretrained else None),
    )
    if pretrained:
        data = _normalised_like(data, pretrained[1], config)
    if rt.is_main:
        print(data.summary(), flush=True)
    _seed(config.seed)  # after the data: loading must not change the initial weights
    model, card = _build_model(config, data, pretrained)
    if config.sync_bn and rt.distributed:
        model = convert_sync_batchnorm(model, rt.device)
    model.to(rt.device, memory_format=_memory_format(config))
    if pretrained and not resume and not _bn_fixed(config):
        _renormalise_for(model, data, config, rt)
    if pretrained and not resume and config.equalise_filters:
        equalise_filter_norms(model)
    loop = _loop(config, rt, data)
    state = _new_state(model, config, loop.steps_per_epoch, rt, _build_ema(model, config))
    if resume:
        state.load_state_dict(ckpt.load_state(out, "last"))
    if requested and rt.is_main:
        _truncate_metrics(out / "metrics.jsonl", state.epoch)
    forward_model: nn.Module = model
    if rt.distributed:
        forward_model = DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )
    if config.compile:
        forward_model = torch.compile(forward_model)
    loop.forward_model = forward_model
    return fit(state, loop, Checkpoints(out, card, config))


def _train_qat(config: TrainConfig, rt: Runtime) -> dict[str, Any]:
    """Quantization-aware training of ``config.weights``: prepare, the same :func:`fit`, convert to int8."""
    if rt.distributed:
        raise ConfigError("--qat runs in one process: launch it without torchrun")
    out = Path(config.out)
    _prepare_output(out, config, resume=False)
    model, card = _load_pretrained(config)
    data = load_training_data(config, card.input_size, card.in_chans)
    data = _normalised_like(data, card, config)
    if card.eval_classes != list(data.classes):
        raise ConfigError(
            f"--qat fine-tunes the float model's own task: its classes {card.eval_classes} are not the data's"
        )
    print(data.summary(), flush=True)
    _seed(config.seed)
    prepared, int8_card = prepare_qat(model, card, data.resolution)
    prepared.to(rt.device)
    loop = _loop(config, rt, data)
    loop.train_mode = False
    record = fit(_new_state(prepared, config, loop.steps_per_epoch, rt), loop)
    convert_qat(
        prepared,
        int8_card,
        out / INT8_FILE,
        f"quantization-aware training, {config.epochs} epochs from {config.weights}",
    )
    print(f"done: int8 program in {out / INT8_FILE} (evaluate it with mobilenet eval --exported)", flush=True)
    return record


def load_training_data(config: TrainConfig, resolution: int | None, in_chans: int | None) -> DataBundle:
    """The train / validation data ``config`` names, at ``resolution`` with ``in_chans`` (None: the data's own)."""
    return load_data(
        config.data,
        val_data=config.val_data,
        data_root=config.data_root,
        val_fraction=config.val_fraction,
        seed=config.seed,
        resolution=resolution,
        in_chans=in_chans,
        augment=config.augment,
        auto_augment=config.auto_augment,
        random_erasing=config.random_erasing,
        download=config.download,
        strict=config.strict,
    )


def _loop(config: TrainConfig, rt: Runtime, data: DataBundle) -> Loop:
    """The batches of ``data`` for this process, and the loop settings."""
    sampler = GlobalBatchSampler(len(data.train), config.batch_size, rt.rank, rt.world_size, config.seed)
    workers = _workers(config, data)
    loader = DataLoader(data.train, batch_sampler=sampler, num_workers=workers, pin_memory=rt.device.type == "cuda")
    val_loader = _eval_loader(data.val, config.batch_size, rt, workers) if data.val is not None else None
    steps = min(len(sampler), config.steps_per_epoch or len(sampler))
    mix = build_batch_mix(config.mixup, config.cutmix, len(data.classes))
    return Loop(config, rt, loader, sampler, steps, val_loader, list(data.classes), mix)


def _new_state(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int, rt: Runtime, ema: AveragedModel | None = None
) -> TrainState:
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=config.amp == "fp16")
    return TrainState(model, optimizer, scheduler, scaler, ema)


def _commit_epoch(
    state: TrainState,
    record: dict[str, Any],
    best: tuple[str, nn.Module | None],
    logger: _Logger,
    checkpoints: Checkpoints | None,
    loop: Loop,
) -> None:
    """Put a finished epoch on disk: ``best.*`` (when ``best`` holds weights), the metrics line, then ``last.*``.

    ``last.state.pt`` comes last: until it is renamed into place the previous epoch stays the
    one ``--resume`` continues. Only the main process writes; every process waits for it, and a
    failed write stops them all with one message naming the file.
    """
    rt, failure = loop.rt, None
    if rt.is_main:
        try:
            source, weights = best
            if checkpoints is not None and weights is not None:
                checkpoints.save("best", weights, source, state)
            logger.write(record)
            if checkpoints is not None:
                checkpoints.save("last", state.model, "model", state)
        except (OSError, WeightsError) as err:  # save_native wraps the OSError
            cause = err if isinstance(err, OSError) else err.__cause__
            reason = describe_failure(cause) if isinstance(cause, OSError) else str(err)
            hint = _restart_hint(Path(loop.config.out))
            failure = f"cannot write {reason}: training stopped in epoch {state.epoch}; {hint}"
    if not all_succeeded(failure is None, rt.device):
        raise TrainingError(failure or "the main process could not write the epoch's checkpoint (see its message)")


def _restart_hint(out: Path) -> str:
    """What survives a failed write and how to continue."""
    path = ckpt.state_path(out)
    if not path.is_file():
        return f"no checkpoint was committed yet; make {out} writable and start again"
    return f"the last committed checkpoint {path} is intact: free space or fix permissions, then --resume {out}"


# ------------------------------------------------------------------------------ one epoch


def _train_epoch(state: TrainState, loop: Loop, epoch: int) -> EpochStats:
    config, rt = loop.config, loop.rt
    forward_model = loop.forward_model or state.model
    if loop.train_mode:
        forward_model.train()
        if _bn_fixed(config):
            fix_bn_statistics(state.model)
    else:  # evaluation restores the mode it found, which a prepared QAT graph reports as training
        forward_model.eval()
    frozen = _freeze_body(state.model) if epoch < config.freeze_epochs else None
    memory_format = _memory_format(config)
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, images
    bar = _progress(loop.steps_per_epoch, epoch, config, rt)
    start = fetch_start = time.perf_counter()
    data_seconds = 0.0
    # Outside DDP (which expects every parameter's gradient) a frozen body's backward pass is skipped.
    with _without_gradients(frozen if frozen and not rt.distributed else []):
        for step, (images, labels) in enumerate(loop.loader):
            data_seconds += time.perf_counter() - fetch_start
            if step >= loop.steps_per_epoch:
                break
            images = images.to(rt.device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(rt.device, non_blocking=True)
            targets = labels
            if loop.mix is not None:
                images, targets = loop.mix(images, labels)
            try:
                logits, loss = _step(state, forward_model, images, targets, config, rt.device, frozen)
            except torch.OutOfMemoryError as err:
                raise TrainingError(
                    f"out of memory on {rt.device} at batch size {config.batch_size}: try --batch-size "
                    f"{max(config.batch_size // 2, 1)} (or --amp bf16 / fp16)"
                ) from err
            if not math.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss} at epoch {epoch + 1}, step {step + 1}: training stopped; the last good "
                    f"checkpoint in {config.out} is intact. Try a lower --lr or --clip-grad 1.0"
                )
            state.scheduler.step()
            batch = images.shape[0]
            correct = (logits.argmax(1) == labels).sum().item()
            totals += torch.tensor([loss * batch, correct, batch], dtype=torch.float64)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}", top1=f"{100 * totals[1] / totals[2]:.2f}%")
            fetch_start = time.perf_counter()
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    totals = all_reduce_sum(totals.to(rt.device)).cpu()
    return EpochStats(float(totals[0] / totals[2]), float(totals[1] / totals[2]), int(totals[2]), seconds, data_seconds)


def _step(
    state: TrainState,
    forward_model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
    frozen: list[nn.Parameter] | None = None,
) -> tuple[torch.Tensor, float]:
    """One optimisation step; returns the logits and the loss. A non-finite loss changes nothing.

    ``frozen`` parameters get no update (their gradients are dropped before the step).
    """
    with autocast(device, config.amp):
        logits = forward_model(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=config.label_smoothing)
    value = loss.item()
    if not math.isfinite(value):
        return logits, value
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    for param in frozen or ():
        param.grad = None
    if config.clip_grad:
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(state.model.parameters(), config.clip_grad)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    if state.ema is not None:
        state.ema.update_parameters(state.model)
    return logits, value


# -------------------------------------------------------------------------------- helpers


def _elastic_restart(out: Path, config: TrainConfig, rt: Runtime) -> bool:
    """Whether torchrun restarted this group (``--max-restarts``) into the run its first attempt began in ``out``."""
    saved = out / "config.json"
    return rt.restarts > 0 and saved.is_file() and TrainConfig.from_json(saved) == config


def _prepare_output(out: Path, config: TrainConfig, resume: bool) -> None:
    """Create ``out`` (checking it is writable), clear writes a killed run left, save the configuration."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to --out {out}: {err.strerror}; choose a writable folder") from err
    if not resume and ckpt.holds_run(out):
        raise ConfigError(f"{out} already holds a training run: use --resume {out} to continue it, or another --out")
    if resume:
        remove_temporaries(out)
    atomic_write_text(out / "config.json", config.to_json())


def _load_pretrained(config: TrainConfig) -> tuple[MobileNet, ModelCard]:
    """The model to fine-tune (any source ``mobilenet.load`` reads but an exported file); flags must agree with it."""
    overrides = {"width_mult": config.width_mult, "act": config.act}
    model, card = load(config.weights, **{k: v for k, v in overrides.items() if v is not None})
    if not isinstance(model, MobileNet):
        raise ConfigError(f"--weights {config.weights} is an exported file: fine-tune from weights or a training run")
    return model, card


def _normalised_like(data: DataBundle, card: ModelCard, config: TrainConfig) -> DataBundle:
    """The data with the normalisation the pretrained weights were trained with."""
    mean, std = card.mean, card.std
    augmented = train_transform(data.kind, data.resolution, mean, std, config.auto_augment, config.random_erasing)
    plain = eval_transform(data.kind, data.resolution, mean, std)
    train_set = data.train.with_transform(augmented if config.augment else plain)
    val_set = data.val.with_transform(plain) if data.val is not None else None
    return replace(data, train=train_set, val=val_set, mean=mean, std=std)


def _build_model(
    config: TrainConfig, data: DataBundle, pretrained: tuple[MobileNet, ModelCard] | None
) -> tuple[MobileNet, ModelCard]:
    """The model for this data (classes, channels) and the card its checkpoints carry.

    From pretrained weights: their architecture, with a new classifier for the data's classes.
    """
    if pretrained is not None:
        model = pretrained[0]
        model.reset_classifier(len(data.classes))
        if config.dropout is not None:
            model.set_dropout(config.dropout)
        source = f"fine-tuned from {config.weights} with mobilenet train --out {config.out}"
    else:
        overrides = {
            "width_mult": config.width_mult,
            "stem_stride": config.stem_stride,
            "act": config.act,
            "dropout": config.dropout,
        }
        kwargs = {k: v for k, v in overrides.items() if v is not None}
        model = create_model(config.model, **kwargs, num_classes=len(data.classes), in_chans=data.in_chans)
        source = f"trained with mobilenet train --out {config.out}"
    card = ModelCard(
        arch=model.arch,
        kwargs=dict(model.config),
        classes=tuple(data.classes),
        input_size=data.resolution,
        in_chans=data.in_chans,
        mean=tuple(data.mean),
        std=tuple(data.std),
        kind=data.kind,
        source=source,
        format="native",
    )
    return model, card


def _build_ema(model: nn.Module, config: TrainConfig) -> AveragedModel | None:
    """An EMA of the weights (and BN statistics) whose decay warms up as min(decay, (1 + n) / (10 + n))."""
    if config.ema_decay is None:
        return None
    decay = config.ema_decay

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # BN's batch counters: copied
            torch._foreach_copy_(averaged, current)
            return
        step_decay = min(decay, float(1 + num_averaged) / float(10 + num_averaged))
        torch._foreach_lerp_(averaged, current, 1 - step_decay)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def _memory_format(config: TrainConfig) -> torch.memory_format:
    """The layout of the model and its input batches (``--channels-last``)."""
    return torch.channels_last if config.channels_last else torch.contiguous_format


def _bn_fixed(config: TrainConfig) -> bool:
    """Whether BN keeps its running statistics (``--freeze-bn``; by default when fine-tuning ``--weights``)."""
    return bool(config.freeze_bn or (config.freeze_bn is None and config.weights))


def _renormalise_for(model: nn.Module, data: DataBundle, config: TrainConfig, rt: Runtime) -> None:
    """Before fine-tuning with batch statistics: BN re-measured on training batches, function kept."""
    sampler = GlobalBatchSampler(len(data.train), config.batch_size, seed=config.seed)
    loader = DataLoader(data.train, batch_sampler=sampler)
    memory_format = _memory_format(config)
    batches = (images.to(rt.device, memory_format=memory_format) for images, _ in loader)
    renormalise_batchnorm(model, itertools.islice(batches, RENORMALISE_BATCHES))


def _freeze_body(model: nn.Module) -> list[nn.Parameter]:
    """For a fine-tuning warm-up: BN statistics fixed everywhere; returns all but the classifier's parameters."""
    fix_bn_statistics(model)
    head = {id(p) for p in model.classifier.parameters()}
    return [p for p in model.parameters() if id(p) not in head]


@contextmanager
def _without_gradients(params: list[nn.Parameter]) -> Iterator[None]:
    """``params`` need no gradient inside the block, so autograd skips the work for them."""
    flags = [p.requires_grad for p in params]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(params, flags, strict=True):
            param.requires_grad_(flag)


def _workers(config: TrainConfig, data: DataBundle) -> int:
    """Loader processes: none for in-memory small images (cheap transforms), else up to 4 per GPU/CPU."""
    if config.workers >= 0:
        return config.workers
    if data.kind == "small":
        return 0
    return min(4, max(1, (torch.get_num_threads() or 1) // 2))


def _eval_loader(dataset: Dataset, batch_size: int, rt: Runtime, workers: int) -> DataLoader:
    sampler = GlobalBatchSampler(len(dataset), batch_size, rt.rank, rt.world_size, shuffle=False)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers)


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _seed_epoch(seed: int, epoch: int, rank: int, loader: DataLoader) -> None:
    """Seed everything random in this epoch from (seed, epoch, rank) alone."""
    epoch_seed = (seed * 1_000_003 + epoch * 7_919 + rank) % 2**63
    _seed(epoch_seed)
    loader.generator = torch.Generator().manual_seed(epoch_seed)


def _evaluate(model: nn.Module, loop: Loop) -> EvalResult:
    config, rt = loop.config, loop.rt
    return evaluate(
        model, loop.val_loader, loop.classes, rt.device, config.amp, config.channels_last, reduce=all_reduce_sum
    )


def _val_record(prefix: str, result: EvalResult) -> dict[str, float]:
    return {f"{prefix}_loss": result.loss, f"{prefix}_top1": result.top1, f"{prefix}_top5": result.top5}


def _best_candidate(record: dict[str, Any], candidates: dict[str, nn.Module]) -> tuple[str, float]:
    """Which weights (model or EMA) scored best on validation this epoch; without validation, the model."""
    scores = {"model": record.get("val_top1", -1.0)}
    if "ema" in candidates:
        scores["ema"] = record.get("ema_val_top1", -1.0)
    source = max(scores, key=lambda k: scores[k])
    return source, scores[source]


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Keep the metric lines of the committed epochs: drop later ones (and a line torn by a failed write)."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if (_metrics_epoch(line) or epochs + 1) <= epochs]
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def _metrics_epoch(line: str) -> int | None:
    """The epoch of a ``metrics.jsonl`` line; None for a line that is not a whole record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record.get("epoch") if isinstance(record, dict) else None


def _progress(steps: int, epoch: int, config: TrainConfig, rt: Runtime) -> Any:
    """A progress bar on a terminal; nothing in a log file (the epoch's summary line says it all)."""
    if not (config.progress and rt.is_main and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", dynamic_ncols=True, leave=False)


class _Logger:
    """``metrics.jsonl`` (one line per epoch), a one-line summary on stdout, TensorBoard if installed."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.path, self.enabled, self.board = out / "metrics.jsonl", enabled, None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.board = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.board = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_line(self.path, json.dumps(record))
        parts = [
            f"epoch {record['epoch']}",
            f"loss {record['train_loss']:.4f}",
            f"train {100 * record['train_top1']:.2f}%",
        ]
        for key in ("val_top1", "ema_val_top1"):
            if key in record:
                parts.append(f"{key.removesuffix('_top1')} {100 * record[key]:.2f}%")
        parts += [f"{record['images_per_s']:.0f} img/s", f"{record['seconds']:.0f}s"]
        if "data_seconds" in record:
            parts.append(f"data {100 * record['data_seconds'] / record['seconds']:.0f}%")
        print(" | ".join(parts), flush=True)
        if self.board is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, float) and math.isfinite(value):
                    self.board.add_scalar(key, value, record["epoch"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
