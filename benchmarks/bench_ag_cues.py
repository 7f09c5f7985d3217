"""Are synth-ag's contact and gaze cues visible per pair?

Binary tasks per person-object pair and frame: "in contact" (any contact predicate but
``not_contacting``) and ``looking_at``. Probes: (a) a linear probe on the frozen (random)
ResNet-18 ``layer2`` maps RoI-pooled 7x7 over the union box and the object box (the features
the video-methods benchmark caches), (b) a small CNN trained on the union crop's pixels (32 px).
Test AUC on the test split.

    .venv/bin/python benchmarks/bench_ag_cues.py DATA_ROOT   # a synth-ag folder (96 px)
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.ops import roi_align

from tailgraph.data.action_genome import CONTACTING, load_ag
from tailgraph.modeling.backbone import ResNetTrunk

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def pairs(root: str, split: str, limit: int) -> list[tuple]:
    """``(image, subject box, object box, in contact, looking at)`` per pair and frame."""
    videos, vocab = load_ag(root, split, layout_only=False)
    names = vocab.predicates
    look = names.index("looking_at")
    contact = {i for i, n in enumerate(names) if n in CONTACTING and n != "not_contacting"}
    out: list[tuple] = []
    for v in videos:
        for g in v.frames:
            rel = g.relations.tolist()
            for s, o in {(a, b) for a, b, _ in rel}:
                ps = [p for a, b, p in rel if a == s and b == o]
                out.append(
                    (
                        g.image_path,
                        g.boxes[s].tolist(),
                        g.boxes[o].tolist(),
                        int(any(p in contact for p in ps)),
                        int(look in ps),
                    )
                )
            if len(out) >= limit:
                return out
    return out


_IMAGES: dict[str, torch.Tensor] = {}


def image(path: str) -> torch.Tensor:
    if path not in _IMAGES:
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        _IMAGES[path] = torch.from_numpy(a).permute(2, 0, 1)
    return _IMAGES[path]


def union(p: tuple) -> list[float]:
    s, o = p[1], p[2]
    return [min(s[0], o[0]), min(s[1], o[1]), max(s[2], o[2]), max(s[3], o[3])]


def rois(chunk: list[tuple], which: str) -> torch.Tensor:
    return torch.tensor(
        [[k] + (union(p) if which == "union" else p[2]) for k, p in enumerate(chunk)],
        dtype=torch.float32,
    )


def trunk_features(trunk: ResNetTrunk, ps: list[tuple], which: str) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(ps), 256):
            chunk = ps[i : i + 256]
            maps = trunk((torch.stack([image(p[0]) for p in chunk]) - MEAN) / STD)
            pooled = roi_align(maps, rois(chunk, which), 7, 1 / trunk.stride, 2, aligned=True)
            out.append(pooled.flatten(1))
    return torch.cat(out)


def crops(ps: list[tuple], size: int = 32) -> torch.Tensor:
    out = []
    for i in range(0, len(ps), 256):
        chunk = ps[i : i + 256]
        ims = torch.stack([image(p[0]) for p in chunk])
        out.append(roi_align(ims, rois(chunk, "union"), size, 1.0, 2, aligned=True))
    return torch.cat(out)


def auc(score: np.ndarray, y) -> float:
    y = np.asarray(y)[np.argsort(-score)]
    pos = y.sum()
    return float(((1 - y) * np.cumsum(y)).sum() / (pos * (len(y) - pos)))


def fit(model: nn.Module, x, y, xt, yt, epochs: int = 10, lr: float = 1e-3) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    target = torch.tensor(y, dtype=torch.float32)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = F.binary_cross_entropy_with_logits(model(x[idx]).squeeze(-1), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return auc(model(xt).squeeze(-1).numpy(), yt)


def main() -> int:
    root = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tr, te = pairs(root, "train", 6000), pairs(root, "test", 2000)
    print(f"pairs {len(tr)} / {len(te)}; contact rate {np.mean([p[3] for p in tr]):.3f}")
    trunk = ResNetTrunk(18, last_stage="layer2", frozen=True).eval()
    t0 = time.perf_counter()
    ftr = torch.cat([trunk_features(trunk, tr, "union"), trunk_features(trunk, tr, "obj")], 1)
    fte = torch.cat([trunk_features(trunk, te, "union"), trunk_features(trunk, te, "obj")], 1)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    ctr, cte = crops(tr), crops(te)
    print(f"features in {time.perf_counter() - t0:.0f} s")
    for task, k in (("in contact", 3), ("looking_at", 4)):
        y, yt = [p[k] for p in tr], [p[k] for p in te]
        torch.manual_seed(0)
        linear = fit(nn.Linear(ftr.shape[1], 1), ftr, y, fte, yt)
        torch.manual_seed(0)
        cnn = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(64, 1),
        )  # fmt: skip
        print(
            f"{task}: linear probe on frozen layer2 (union + object 7x7) AUC "
            f"{linear:.3f}; CNN on the union crop AUC {fit(cnn, ctr, y, cte, yt):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
