"""A synth-ag trunk that sees the scene: the stand-in for a pretrained detector's backbone.

The AG papers' relation models read RoI features of a detector whose backbone was pretrained
(ImageNet, then AG's objects) and is frozen; a randomly initialised frozen trunk is not that,
and on synth-ag it leaves most of which contact an end mark shows out of the features (see
``bench_ag_tail.py --parts probe``). This script trains the recipes' trunk (ResNet-18 up to
``layer2``) once, on the training split's frames, to name what is drawn on each object box —
its class, the colour and the inner mark of a glyph's end mark (visual attributes, each with 4
values shared by 4 contact predicates; no relation label is a target) — and saves it as a
checkpoint that ``CachedTrunkFeatures(weights_path=...)`` loads frozen, so every relation model
of a comparison reads the same learned maps (``bench_video_methods.py --trunk learned
--trunk-from OUT``).

    .venv/bin/python benchmarks/bench_ag_trunk.py --data DIR/synth-ag --out trunk.pt \\
        [--epochs 4] [--json OUT.json]

Reports per-attribute test accuracy and, per contact predicate, how often both its colour and
its mark are named right on the touched box (the share of the predicate decidable from the
trunk's features of the object alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tailgraph.data.action_genome import CONTACTING, load_ag  # noqa: E402
from tailgraph.data.images import load_image  # noqa: E402
from tailgraph.data.synthetic.render import GLYPH_COLOURS, GLYPH_PATTERNS  # noqa: E402
from tailgraph.modeling.backbone import ResNetTrunk  # noqa: E402

MARKED = [p for p in CONTACTING if p != "not_contacting"]  # the generator's style order


def style(predicate: str) -> tuple[int, int]:
    """(colour, pattern) index of a contact predicate's glyph (``synthetic/ag.py``)."""
    k = MARKED.index(predicate)
    return k % len(GLYPH_COLOURS), k // len(GLYPH_COLOURS)


def frames(root: str, split: str, max_size: int) -> list[dict]:
    videos, vocab = load_ag(root, split, layout_only=False)
    names = vocab.predicates
    out = []
    for v in videos:
        for g in v.frames:
            colour = np.zeros((g.num_boxes, len(GLYPH_COLOURS)), np.float32)
            mark = np.zeros((g.num_boxes, len(GLYPH_PATTERNS)), np.float32)
            contacts: list[list[str]] = [[] for _ in range(g.num_boxes)]
            person = g.labels == vocab.object_classes.index("person")
            for s, o, p in g.relations.tolist():
                n = names[p]
                if n in MARKED:
                    k = o if bool(person[s]) else s  # the touched object
                    c, m = style(n)
                    colour[k, c] = mark[k, m] = 1.0
                    contacts[k].append(n)
            keep = ~person
            idx = keep.nonzero().flatten().tolist()
            out.append(
                {
                    "path": g.image_path,
                    "boxes": g.boxes[keep].float(),
                    "labels": g.labels[keep].long(),
                    "colour": torch.from_numpy(colour[idx]),
                    "mark": torch.from_numpy(mark[idx]),
                    "contacts": [contacts[i] for i in idx],
                }
            )
    return out


class TrunkProbe(nn.Module):
    """The trunk, RoIAlign over the (non-person) object boxes, the recipes' RoI head, and
    heads for the object class and the end mark's colour and inner mark."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(18, last_stage="layer2")
        c = self.trunk.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(c, 32, 1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 49, 256),
            nn.ReLU(),
        )
        self.cls = nn.Linear(256, num_classes)
        self.colour = nn.Linear(256, len(GLYPH_COLOURS))
        self.mark = nn.Linear(256, len(GLYPH_PATTERNS))

    def forward(self, images: torch.Tensor, rois: torch.Tensor):
        fmap = self.trunk(images)
        h = self.head(roi_align(fmap, rois, 7, 1 / self.trunk.stride, 2, aligned=True))
        return self.cls(h), self.colour(h), self.mark(h)


def batches(items: list[dict], size: int, max_size: int, rng: np.random.Generator | None):
    order = rng.permutation(len(items)) if rng is not None else np.arange(len(items))
    for i in range(0, len(order), size):
        chunk = [items[j] for j in order[i : i + size]]
        ims, rois = [], []
        for k, it in enumerate(chunk):
            im, scale = load_image(it["path"], max_size)
            ims.append(im)
            b = it["boxes"] * scale
            rois.append(torch.cat([torch.full((len(b), 1), float(k)), b], 1))
        yield chunk, torch.stack(ims), torch.cat(rois)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a synth-ag folder")
    ap.add_argument("--out", required=True, help="where the trunk checkpoint goes")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    train, test = frames(a.data, "train", a.max_size), frames(a.data, "test", a.max_size)
    _, vocab = load_ag(a.data, "test", layout_only=True)
    model = TrunkProbe(len(vocab.object_classes))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    rng = np.random.default_rng(a.seed)
    for epoch in range(a.epochs):
        model.train()
        total = 0.0
        for chunk, ims, rois in batches(train, a.batch, a.max_size, rng):
            cls, colour, mark = model(ims, rois)
            labels, colours, marks = (
                torch.cat([it[key] for it in chunk]) for key in ("labels", "colour", "mark")
            )
            loss = (
                F.cross_entropy(cls, labels)
                + F.binary_cross_entropy_with_logits(colour, colours)
                + F.binary_cross_entropy_with_logits(mark, marks)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        print(f"epoch {epoch}: loss {total:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    hit: dict[str, list[bool]] = {}
    cls_ok, n_obj = 0, 0
    with torch.no_grad():
        for chunk, ims, rois in batches(test, 64, a.max_size, None):
            cls, colour, mark = model(ims, rois)
            cls_ok += int((cls.argmax(1) == torch.cat([it["labels"] for it in chunk])).sum())
            n_obj += len(cls)
            row = 0
            for it in chunk:
                for k in range(len(it["labels"])):
                    for p in it["contacts"][k]:
                        c, m = style(p)
                        hit.setdefault(p, []).append(bool(colour[row, c] > 0 and mark[row, m] > 0))
                    row += 1
    per = {p: float(np.mean(v)) for p, v in sorted(hit.items())}
    result = {
        "class_accuracy": cls_ok / max(1, n_obj),
        "per_predicate_mark_recall": per,
        "mean_mark_recall": float(np.mean(list(per.values()))),
        "epochs": a.epochs,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    torch.save({"state_dict": {f"trunk.{k}": v for k, v in model.trunk.state_dict().items()}},
               a.out)  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "per_predicate_mark_recall"}))
    print({p: round(v, 2) for p, v in per.items()})
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
