"""Image moderation (``image-moderation``): a small CNN that flags a prohibited object in uploads.

The seed brief's second scenario, as a real model on this machine: procedurally generated 32x32
RGB uploads (:mod:`mlhunt.scenarios.imagegen`), half of them showing the prohibited object (a
thick X-shaped cross), and a small PyTorch CNN trained on CPU in well under a minute to >= 95%
clean holdout accuracy. The deployment logs a downsampled proxy of every upload (8x8 grayscale,
64 numbers), as DESIGN.md describes for images.

Build artifacts (all in the scenario folder, nothing pickled):

- ``model.pt``: the CNN's ``state_dict`` (``torch.save``; loaded with ``weights_only=True``),
- ``model.json``: the architecture hyperparameters needed to rebuild the module,
- ``train.npz`` and ``holdout.npz``: images as uint8 (n, 3, 32, 32), labels and the prohibited
  object's boxes (``allow_pickle=False``), so attacks score against the exact split.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlhunt.scenarios import imagegen
from mlhunt.scenarios.base import BuiltScenario, InputSpec, Progress, quiet
from mlhunt.scenarios.determinism import torch_settings

CLASSES = imagegen.CLASSES
MODEL_NAME = "moderation-cnn-1"
SHAPE = (3, imagegen.SIZE, imagegen.SIZE)
LOG_FACTOR = 4  # the logged proxy: 8x8 grayscale, 64 values
LOG_SIZE = (imagegen.SIZE // LOG_FACTOR) ** 2
# Share of prohibited images among legitimate uploads (sample_benign): most uploads are fine.
BENIGN_PROHIBITED_RATE = 0.2
TRAIN_THREADS = 2

DEFAULTS: dict[str, Any] = {
    "n_train": 12_000,
    "n_holdout": 3_000,
    "epochs": 8,
    "batch_size": 128,
    "lr": 4e-3,
    "widths": (16, 32, 64),
    "hidden": 32,
    "augment": True,  # a random rotation/flip of the square per batch
}


def build_cnn(
    widths: tuple[int, ...] | list[int] = (16, 32, 64),
    hidden: int = 32,
    n_classes: int = 2,
    in_channels: int = 3,
) -> nn.Sequential:
    """conv3x3-BN-ReLU-maxpool blocks, global max pooling (the object can be anywhere), MLP head.

    Outputs logits; inputs are (n, 3, 32, 32) in [0, 1] with no further normalisation."""
    layers: list[nn.Module] = []
    c = in_channels
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    layers += [
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(c, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    ]
    return nn.Sequential(*layers)


def _save_split(path: Path, batch: imagegen.ImageBatch) -> None:
    np.savez_compressed(
        path,
        images=np.round(batch.images * 255).astype(np.uint8),
        labels=batch.labels.astype(np.int64),
        boxes=batch.boxes.astype(np.float32),
    )


def _load_split(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        images = data["images"].astype(np.float32) / 255
        return images, data["labels"].astype(np.int64), data["boxes"].astype(np.float32)


def cnn_logits(model: nn.Module, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch], np.float32))
            out.append(model(chunk).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_cnn(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    widths: tuple[int, ...],
    hidden: int,
    augment: bool = True,
    progress: Progress = quiet,
) -> nn.Sequential:
    """Train the CNN on CPU with ``TRAIN_THREADS`` threads, AdamW and a one-cycle schedule."""
    with torch_settings(TRAIN_THREADS, seed):
        model = build_cnn(widths, hidden, len(CLASSES))
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        steps_per_epoch = len(xt) // batch_size
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=epochs * steps_per_epoch
        )
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for i in range(steps_per_epoch):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                xb = xt[idx]
                if augment:
                    # A random symmetry of the square per batch: the cross, the distractors and
                    # the backgrounds are all invariant in distribution under it.
                    k = int(torch.randint(0, 8, (1,), generator=gen))
                    xb = torch.rot90(xb, k % 4, dims=(2, 3))
                    if k >= 4:
                        xb = torch.flip(xb, dims=(3,))
                    xb = xb.contiguous()  # rot90 returns a strided view; give conv a dense batch
                loss = nn.functional.cross_entropy(model(xb), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            progress(f"epoch {epoch + 1}/{epochs}: loss {total / max(steps_per_epoch, 1):.4f}")
        model.eval()
    return model


@dataclass
class LoadedImageModeration:
    """The built scenario, loaded: predicts, logs a downsampled proxy, holds the split."""

    directory: Path
    model: nn.Module
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    boxes_train: np.ndarray
    boxes_holdout: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    name: str = "image-moderation"
    model_name: str = MODEL_NAME
    spec: InputSpec = field(default_factory=lambda: InputSpec(kind="image", shape=SHAPE))
    classes: tuple[str, ...] = CLASSES

    def _batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape == SHAPE:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != SHAPE:
            raise ValueError(f"expected images of shape (n, {', '.join(map(str, SHAPE))})")
        return x

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        """Raw logits (n, 2), float64."""
        return cnn_logits(self.model, self._batch(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, 2), float64, rows summing to 1 (column 1: prohibited)."""
        return softmax(self.predict_logits(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    def log_vector(self, x: np.ndarray) -> list[float]:
        """What the deployment logs for one upload: 8x8 grayscale, average-pooled, 4 decimals."""
        vec = imagegen.downsample(self._batch(x)[:1], LOG_FACTOR)[0]
        return [round(float(v), 4) for v in vec]

    def log_vectors(self, x: np.ndarray) -> np.ndarray:
        """``log_vector`` for a batch, as an (n, 64) array (for in-process traffic)."""
        return np.round(imagegen.downsample(self._batch(x), LOG_FACTOR).astype(np.float64), 4)

    def sample_benign(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Fresh uploads as legitimate users send them (``BENIGN_PROHIBITED_RATE`` prohibited)."""
        return imagegen.generate(n, rng, prohibited_rate=BENIGN_PROHIBITED_RATE).images

    def generate(
        self, n: int, rng: np.random.Generator, *, labels: np.ndarray | None = None
    ) -> imagegen.ImageBatch:
        """Fresh images from the scenario's distribution with ground truth (labels, boxes)."""
        return imagegen.generate(n, rng, labels=labels)

    def torch_model(self) -> nn.Module:
        """The CNN itself (eval mode, logits out) for white-box attacks."""
        return self.model.eval()


class ImageModeration:
    """Procedural uploads + a small CNN moderator; see the module docstring."""

    name = "image-moderation"
    artifact = "model.pt"  # the published artifact scan checks (torch.save: a pickle in a zip)
    description = (
        "CNN flagging a prohibited object in user-uploaded images (32x32 RGB, generated), "
        "served with scores; the target for adversarial patches and extraction."
    )

    def build(
        self, directory: Path, *, seed: int = 0, progress: Progress = quiet, **options: Any
    ) -> BuiltScenario:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown image-moderation options: {', '.join(sorted(unknown))}")
        cfg = {**DEFAULTS, **options}
        cfg["widths"] = tuple(int(w) for w in cfg["widths"])
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        ss_train, ss_holdout, ss_torch = np.random.SeedSequence(seed).spawn(3)
        progress(f"generating {cfg['n_train']} + {cfg['n_holdout']} images")
        rng = np.random.default_rng(ss_train)
        train = imagegen.generate(
            cfg["n_train"], rng, labels=imagegen.balanced_labels(cfg["n_train"], rng)
        )
        rng = np.random.default_rng(ss_holdout)
        holdout = imagegen.generate(
            cfg["n_holdout"], rng, labels=imagegen.balanced_labels(cfg["n_holdout"], rng)
        )
        gen_seconds = time.perf_counter() - start
        _save_split(directory / "train.npz", train)
        _save_split(directory / "holdout.npz", holdout)

        progress(f"training the CNN ({cfg['epochs']} epochs, {TRAIN_THREADS} threads)")
        t0 = time.perf_counter()
        torch_seed = int(ss_torch.generate_state(1)[0])
        model = train_cnn(
            train.images,
            train.labels,
            seed=torch_seed,
            epochs=cfg["epochs"],
            batch_size=cfg["batch_size"],
            lr=cfg["lr"],
            widths=cfg["widths"],
            hidden=cfg["hidden"],
            augment=bool(cfg["augment"]),
            progress=progress,
        )
        train_seconds = time.perf_counter() - t0
        torch.save(model.state_dict(), directory / "model.pt")
        arch = {
            "architecture": "mlhunt.scenarios.image.build_cnn",
            "widths": list(cfg["widths"]),
            "hidden": cfg["hidden"],
            "n_classes": len(CLASSES),
            "in_channels": SHAPE[0],
            "input_shape": list(SHAPE),
            "input_range": [0.0, 1.0],
            "classes": list(CLASSES),
            "model_name": MODEL_NAME,
            "training": {k: v for k, v in cfg.items() if k not in ("widths", "hidden")}
            | {"seed": seed, "torch_seed": torch_seed, "threads": TRAIN_THREADS},
        }
        (directory / "model.json").write_text(json.dumps(arch, indent=2) + "\n", "utf-8")

        with torch_settings(TRAIN_THREADS, torch_seed):
            pred = cnn_logits(model, holdout.images).argmax(axis=1)
        accuracy = float((pred == holdout.labels).mean())
        progress(f"clean holdout accuracy {accuracy:.4f}")
        return BuiltScenario(
            name=self.name,
            directory=directory,
            seed=seed,
            metrics={
                "accuracy": round(accuracy, 6),
                "train_seconds": round(train_seconds, 3),
                "generate_seconds": round(gen_seconds, 3),
                "n_train": float(cfg["n_train"]),
                "n_holdout": float(cfg["n_holdout"]),
            },
            files={
                "model": "model.pt",
                "architecture": "model.json",
                "train": "train.npz",
                "holdout": "holdout.npz",
            },
            seconds=round(time.perf_counter() - start, 3),
        )

    def load(self, directory: Path) -> LoadedImageModeration:
        directory = Path(directory)
        cfg = json.loads((directory / "model.json").read_text("utf-8"))
        model = build_cnn(cfg["widths"], cfg["hidden"], cfg["n_classes"], cfg["in_channels"])
        state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        x_train, y_train, b_train = _load_split(directory / "train.npz")
        x_holdout, y_holdout, b_holdout = _load_split(directory / "holdout.npz")
        return LoadedImageModeration(
            directory=directory,
            model=model,
            x_train=x_train,
            y_train=y_train,
            x_holdout=x_holdout,
            y_holdout=y_holdout,
            boxes_train=b_train,
            boxes_holdout=b_holdout,
            config=cfg,
            model_name=cfg.get("model_name", MODEL_NAME),
        )
