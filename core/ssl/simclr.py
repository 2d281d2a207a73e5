"""SimCLR self-supervised training of a small backbone on a pool of images.

Why SimCLR: among SimCLR, SwAV and DINO it learns the most per CPU-minute on small
pools: one backbone (no momentum teacher to run), two small views (no multi-crop),
and a loss that is well behaved at batch sizes a CPU can hold. It is also the
method the bundled backbone was trained with, so one code path serves both.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from core.features.nets import SmallResNet, projection_head
from core.ssl.augment import AugmentConfig, make_view
from core.ssl.lars import LARS, lars_param_groups


@dataclass(frozen=True)
class SimCLRConfig:
    """Training recipe; the defaults trained the bundled backbone."""

    epochs: int = 100
    batch_size: int = 512
    base_lr: float = 0.4  # per 256 images, scaled linearly with the batch
    weight_decay: float = 1e-5
    temperature: float = 0.2
    warmup_fraction: float = 0.05
    proj_hidden_dim: int = 2048
    proj_dim: int = 256
    widths: tuple[int, ...] = (40, 80, 160, 320)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    image_size: int = 32
    seed: int = 0
    checkpoint_every: int = 500  # steps
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def nt_xent_loss(z1, z2, *, temperature):
    """Normalised-temperature cross-entropy over a batch of positive pairs.

    Parameters
    ----------
    z1, z2 : Tensor of shape (B, D)
        Projections of two views; row i of each is a positive pair.
    temperature : float

    Returns
    -------
    Scalar tensor.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    n = z1.shape[0]
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def channel_stats(images):
    """Per-channel mean and std in [0, 1] units of a (N, H, W, 3) uint8 array."""
    sample = images[:: max(1, len(images) // 10_000)].astype(np.float64) / 255
    return sample.mean(axis=(0, 1, 2)).astype(np.float32), sample.std(axis=(0, 1, 2)).astype(np.float32)


def learning_rate(step, *, total_steps, peak, warmup_fraction):
    warmup = max(1, int(total_steps * warmup_fraction))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


class SimCLRTrainer:
    """Trains a :class:`~core.features.nets.SmallResNet` with SimCLR.

    Parameters
    ----------
    config : SimCLRConfig
    device : str
        ``"cpu"``, ``"cuda"`` or ``"mps"``.
    half_precision : bool or None
        bfloat16 autocast; ``None`` turns it on for CUDA only, where it is faster.
    callbacks : sequence
        Objects with optional ``on_step(trainer, step, loss)`` and
        ``on_epoch_end(trainer, epoch)`` methods (progress bars, monitors).
    init_backbone : dict or None
        State dict of a backbone of the config's shape to continue training from
        (a new projection head is learned); ``None`` starts from random weights.
        A checkpoint being resumed takes precedence.

    Attributes
    ----------
    backbone_ : SmallResNet
    mean_, std_ : ndarray of shape (3,)
        Normalisation of the training pool, part of the backbone's preprocessing.
    step_ : int
        Optimisation steps done, counting those of a resumed run.
    total_steps_ : int
        Steps the run takes in all: ``epochs * (N // batch_size)``.
    history_ : list of dict
        ``{"step", "epoch", "loss", "lr"}`` per logged step.
    """

    def __init__(self, *, config=SimCLRConfig(), device="cpu", half_precision=None, callbacks=(), init_backbone=None):
        self.config = config
        self.device = device
        self.half_precision = half_precision
        self.callbacks = callbacks
        self.init_backbone = init_backbone

    def _validate(self, images):
        size = self.config.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
            raise ValueError(
                f"images must be a uint8 array of shape (N, {size}, {size}, 3); got {images.dtype} {images.shape}. "
                "Resize the pool to the config's image_size first."
            )
        if len(images) < 2:
            raise ValueError(f"SimCLR needs at least 2 images to contrast; got {len(images)}.")

    def _build(self):
        torch.manual_seed(self.config.seed)
        self.backbone_ = SmallResNet(widths=self.config.widths, blocks=self.config.blocks)
        if self.init_backbone is not None:
            try:
                self.backbone_.load_state_dict(self.init_backbone)
            except RuntimeError as error:
                raise ValueError(
                    f"init_backbone does not fit widths={self.config.widths}, blocks={self.config.blocks}: {error}"
                ) from None
        self.backbone_ = self.backbone_.to(self.device)
        self.head_ = projection_head(self.backbone_.embed_dim, self.config.proj_hidden_dim, self.config.proj_dim)
        self.head_ = self.head_.to(self.device)
        if self.device == "cuda":
            self.backbone_ = self.backbone_.to(memory_format=torch.channels_last)
        self.batch_size_ = min(self.config.batch_size, self.n_images_)
        self.optimizer_ = LARS(
            lars_param_groups(self.backbone_, self.head_),
            lr=self.config.base_lr * self.batch_size_ / 256,
            weight_decay=self.config.weight_decay,
        )

    def _checkpoint_state(self):
        return dict(
            backbone=self.backbone_.state_dict(),
            head=self.head_.state_dict(),
            optimizer=self.optimizer_.state_dict(),
            step=torch.tensor(self.step_),
            mean=torch.from_numpy(self.mean_),
            std=torch.from_numpy(self.std_),
            config=repr(asdict(self.config)),
        )

    def save_checkpoint(self, path):
        """Write the full training state atomically (temp file, then rename)."""
        tmp = f"{path}.tmp"
        torch.save(self._checkpoint_state(), tmp)
        os.replace(tmp, path)

    def _resume(self, path):
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["config"] != repr(asdict(self.config)):
            raise ValueError(
                f"checkpoint {path} was written with another training config; "
                "resume with the same options or pass a new checkpoint path."
            )
        self.backbone_.load_state_dict(state["backbone"])
        self.head_.load_state_dict(state["head"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.step_ = int(state["step"])
        self.mean_, self.std_ = state["mean"].cpu().numpy(), state["std"].cpu().numpy()

    def fit(self, images, *, checkpoint_path=None):
        """Train on a pool of images, resuming from ``checkpoint_path`` if it exists.

        Parameters
        ----------
        images : ndarray of shape (N, S, S, 3), uint8
            The pool at ``config.image_size`` = S.
        checkpoint_path : str or None
            Where training state is saved every ``checkpoint_every`` steps and at the end.

        Returns
        -------
        self
        """
        self._validate(images)
        self.n_images_ = len(images)
        self._build()
        self.step_, self.history_ = 0, []
        self.mean_, self.std_ = channel_stats(images)
        if checkpoint_path and os.path.exists(checkpoint_path):
            self._resume(checkpoint_path)
        data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(self.device)
        mean, std = torch.from_numpy(self.mean_).to(self.device), torch.from_numpy(self.std_).to(self.device)
        steps_per_epoch = self.n_images_ // self.batch_size_
        total_steps = self.total_steps_ = self.config.epochs * steps_per_epoch
        use_autocast = self.half_precision if self.half_precision is not None else self.device == "cuda"
        peak_lr = self.config.base_lr * self.batch_size_ / 256
        self.backbone_.train()
        self.head_.train()
        order = None
        while self.step_ < total_steps:
            epoch, position = divmod(self.step_, steps_per_epoch)
            if order is None or position == 0:
                shuffle = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
                order = torch.randperm(self.n_images_, generator=shuffle).to(self.device)
            batch = data[order[position * self.batch_size_ : (position + 1) * self.batch_size_]]
            generator = torch.Generator(device=self.device).manual_seed(self.config.seed * 1_000_003 + self.step_)
            views = [
                make_view(
                    batch,
                    size=self.config.image_size,
                    mean=mean,
                    std=std,
                    config=self.config.augment,
                    generator=generator,
                )
                for _ in range(2)
            ]
            lr = learning_rate(
                self.step_, total_steps=total_steps, peak=peak_lr, warmup_fraction=self.config.warmup_fraction
            )
            for group in self.optimizer_.param_groups:
                group["lr"] = lr
            inputs = torch.cat(views)
            if self.device == "cuda":
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=use_autocast):
                projections = self.head_(self.backbone_(inputs))
            z1, z2 = projections.float().chunk(2)
            loss = nt_xent_loss(z1, z2, temperature=self.config.temperature)
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_.step()
            self.step_ += 1
            if self.step_ % 10 == 0 or self.step_ == total_steps:
                self.history_.append(dict(step=self.step_, epoch=epoch, loss=loss.item(), lr=lr))
            for callback in self.callbacks:
                if hasattr(callback, "on_step"):
                    callback.on_step(self, self.step_, loss.detach())
            if checkpoint_path and self.step_ % self.config.checkpoint_every == 0:
                self.save_checkpoint(checkpoint_path)
            if self.step_ % steps_per_epoch == 0:
                for callback in self.callbacks:
                    if hasattr(callback, "on_epoch_end"):
                        callback.on_epoch_end(self, epoch)
        if checkpoint_path:
            self.save_checkpoint(checkpoint_path)
        self.backbone_.eval()
        return self
