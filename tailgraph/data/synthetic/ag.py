"""synth-ag: the Action Genome variant of the synthetic benchmark (specs/synthetic.md).

Videos of ``T`` frames with one person (a stick figure whose gaze mark points at what it looks
at) and 2–4 moving objects. Per person–object pair and frame:

* attention (single label): ``looking_at`` the object the gaze mark points at (at most one
  per frame; a thin ray in the gaze colour runs from the head to that object's box),
  otherwise ``not_looking_at``, or ``unsure`` when the frame shows no gaze mark;
* spatial (multi-label, from the geometry of that frame): ``above`` / ``beneath`` (object
  centre above the person's head / below the hips), ``in_front_of`` / ``behind`` (overlapping,
  drawn after / before the person), ``on_the_side_of`` (no overlap), ``in`` (inside the box);
* contacting (multi-label): held over frame intervals (at least 4 frames) and drawn as
  interaction glyphs from the person's hand (one colour × pattern per predicate) that end in a
  mark on the touched object: its box border in the glyph's colour and, inside, the pattern's
  mark (none / centre disc / diagonals / band); ``not_contacting`` has neither. Contact labels
  follow a long tail with a floor: each split deals them from a deck (``tails.py``) so every
  predicate has enough relations to learn and to measure.

Written in AG's files: ``annotations/{object_classes,relationship_classes}.txt``,
``person_bbox.pkl``, ``object_bbox_and_relationship.pkl`` (and ``..._filtersmall.pkl`` without
boxes whose short side is ≤ 16 px), ``frame_list.txt`` and ``frames/<video>/<frame>.jpg``.
The same seed gives byte-identical files.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageDraw

from tailgraph.data.action_genome import CONTACTING, OBJECT_RENAMES, _frame_graph, ag_vocabulary
from tailgraph.data.synthetic.render import (
    COLOURS,
    GLYPH_COLOURS,
    GLYPH_PATTERNS,
    SHAPES,
    background,
    draw_end_mark,
    draw_gaze_ray,
    draw_glyph,
    draw_person,
    draw_shape,
)
from tailgraph.data.synthetic.tails import deal_deck
from tailgraph.structures import VideoSceneGraph
from tailgraph.vocab import Vocabulary

__all__ = ["generate_synth_ag", "SynthAGInfo", "AG_CLASS_FILE_NAMES"]

# object_classes.txt as Action Genome ships it (the loader renames five of them)
AG_CLASS_FILE_NAMES = [
    "person",
    "bag",
    "bed",
    "blanket",
    "book",
    "box",
    "broom",
    "chair",
    "closetcabinet",
    "clothes",
    "cupglassbottle",
    "dish",
    "door",
    "doorknob",
    "doorway",
    "floor",
    "food",
    "groceries",
    "laptop",
    "light",
    "medicine",
    "mirror",
    "papernotebook",
    "phonecamera",
    "picture",
    "pillow",
    "refrigerator",
    "sandwich",
    "shelf",
    "shoe",
    "sofacouch",
    "table",
    "television",
    "towel",
    "vacuum",
    "window",
]
RELATIONSHIP_FILE_NAMES = [
    "lookingat",
    "notlookingat",
    "unsure",
    "above",
    "beneath",
    "infrontof",
    "behind",
    "onthesideof",
    "in",
    "carrying",
    "coveredby",
    "drinkingfrom",
    "eating",
    "haveitonthe back",
    "holding",
    "leaningon",
    "lyingon",
    "notcontacting",
    "otherrelationship",
    "sittingon",
    "standingon",
    "touching",
    "twisting",
    "wearing",
    "wiping",
    "writingon",
]


@dataclass
class SynthAGInfo:
    root: Path
    vocab: Vocabulary
    videos: dict[str, list[VideoSceneGraph]]
    seconds: float


def _class_names() -> list[str]:
    names = ["__background__"] + list(AG_CLASS_FILE_NAMES)
    for i, n in OBJECT_RENAMES.items():
        names[i] = n
    return names[1:]  # without background; index 0 = person


def _spatial(obj: np.ndarray, person: np.ndarray, obj_in_front: bool) -> list[str]:
    ox1, oy1, ox2, oy2 = obj
    px1, py1, px2, py2 = person
    ocy = (oy1 + oy2) / 2
    labels = []
    overlap = min(ox2, px2) > max(ox1, px1) and min(oy2, py2) > max(oy1, py1)
    if ox1 >= px1 and oy1 >= py1 and ox2 <= px2 and oy2 <= py2:
        labels.append("in")
    elif overlap:
        labels.append("in_front_of" if obj_in_front else "behind")
    else:
        labels.append("on_the_side_of")
    if ocy < py1 + 0.15 * (py2 - py1):
        labels.append("above")
    elif ocy > py1 + 0.75 * (py2 - py1):
        labels.append("beneath")
    return labels


def generate_synth_ag(
    out_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    seed: int = 0,
    image_size: int = 128,
    min_frames: int = 8,
    max_frames: int = 12,
    jpeg_quality: int = 90,
    p_contact: float = 0.6,
    contact_floor_share: float = 0.25,
    head_tail_ratio: float = 30.0,
) -> SynthAGInfo:
    """Generate synth-ag into ``out_dir`` (see the module docstring).

    ``p_contact``: the share of objects the person touches in some interval; their contact
    predicates are dealt per split from a deck (:mod:`tailgraph.data.synthetic.tails`) in which
    each of the 16 contact predicates has at least ``contact_floor_share`` of its uniform share
    (at least 3 objects) and the head is ``head_tail_ratio`` times the tail where the floor
    allows it.

    Returns:
        :class:`SynthAGInfo` whose ``videos`` are the in-memory truth, laid out exactly as
        :func:`tailgraph.data.action_genome.load_ag` reads the files back.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    ann = out / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "object_classes.txt").write_text("\n".join(AG_CLASS_FILE_NAMES) + "\n")
    (ann / "relationship_classes.txt").write_text("\n".join(RELATIONSHIP_FILE_NAMES) + "\n")
    world = np.random.default_rng([seed, 31337])
    names = _class_names()
    combos = [(s, c) for c in COLOURS for s in SHAPES]
    drawing = {
        n: combos[int(i)]
        for n, i in zip(names[1:], world.permutation(len(combos))[: len(names) - 1])
    }
    contact_styles = {
        p: (list(GLYPH_COLOURS)[k % 4], GLYPH_PATTERNS[k // 4])
        for k, p in enumerate(x for x in CONTACTING if x != "not_contacting")
    }
    nc = CONTACTING.index("not_contacting")
    contact_ids = [i for i in range(len(CONTACTING)) if i != nc]
    order = [contact_ids[int(r)] for r in world.permutation(len(contact_ids))]  # head first
    zipf = np.array([(k + 1) ** -1.6 for k in range(len(order))])
    second_probs = np.zeros(len(CONTACTING))
    second_probs[order] = zipf / zipf.sum()

    def plan(v: int) -> tuple[np.random.Generator, int, int, np.ndarray]:
        """The draws that fix a video's size: frames, objects and which objects are in contact."""
        rng = np.random.default_rng([seed, v, 271828])
        n_frames = int(rng.integers(min_frames, max_frames + 1))
        n_obj = int(rng.integers(2, 5))
        return rng, n_frames, n_obj, rng.random(n_obj) < p_contact

    # one deck of contact predicates per split (tails.py): every predicate has a floor
    decks: dict[str, list[int]] = {}
    for split, videos in (
        ("train", range(num_train)),
        ("test", range(num_train, num_train + num_test)),
    ):
        n_contact = sum(int(plan(v)[3].sum()) for v in videos)
        decks[split] = deal_deck(
            np.random.default_rng([seed, 4242, len(decks)]),
            n_contact,
            order,
            floor_share=contact_floor_share,
            head_tail_ratio=head_tail_ratio,
            min_floor=3,
        )
    objects, persons, keys = {}, {}, []
    size = image_size
    from tailgraph.progress import track

    for v in track(range(num_train + num_test), "generate synth-ag", unit="video"):
        split = "train" if v < num_train else "test"
        rng, n_frames, n_obj, in_contact = plan(v)
        vid = f"S{v:05d}.mp4"
        pw, ph = size * 0.22, size * 0.5
        px = rng.uniform(0.25, 0.75) * size
        person = np.array(
            [px - pw / 2, size * 0.45 - ph / 2, px + pw / 2, size * 0.45 + ph / 2]
        ).clip(0, size - 1)
        cls = [names[int(i)] for i in rng.integers(1, len(names), n_obj)]
        osz = rng.uniform(0.08, 0.16, n_obj) * size
        pos = rng.uniform(0.1, 0.9, (n_obj, 2)) * size
        vel = rng.normal(0, 0.012, (n_obj, 2)) * size
        front = rng.random(n_obj) < 0.5
        # contacting labels per object, held over intervals of at least 4 frames
        contact = []
        for k in range(n_obj):
            if not in_contact[k]:
                contact.append(([nc], 0, n_frames))
                continue
            first = decks[split].pop()
            labs = [first]
            if rng.random() < 0.1:
                second = int(rng.choice(len(CONTACTING), p=second_probs))
                if second != first:
                    labs.append(second)
            start = int(rng.integers(0, max(1, n_frames // 2)))
            contact.append((labs, start, int(rng.integers(min(start + 4, n_frames), n_frames + 1))))
        target = int(rng.integers(n_obj))
        for f in range(n_frames):
            key = f"{vid}/{f:06d}.jpg"
            keys.append(key)
            img = background(rng, size)
            draw = ImageDraw.Draw(img)
            boxes = []
            for k in range(n_obj):
                c = (pos[k] + vel[k] * f).clip(osz[k] / 2, size - 1 - osz[k] / 2)
                boxes.append(
                    np.array(
                        [c[0] - osz[k] / 2, c[1] - osz[k] / 2, c[0] + osz[k] / 2, c[1] + osz[k] / 2]
                    )
                )
            if rng.random() < 0.15:
                target = int(rng.integers(n_obj))  # the person looks elsewhere from now on
            gaze_shown = rng.random() > 0.08
            for k in range(n_obj):  # objects behind the person first
                if not front[k]:
                    draw_shape(
                        draw, drawing[cls[k]][0], COLOURS[drawing[cls[k]][1]], tuple(boxes[k])
                    )
            gb = boxes[target]
            draw_person(
                draw,
                tuple(person),
                ((gb[0] + gb[2]) / 2, (gb[1] + gb[3]) / 2) if gaze_shown else None,
            )
            if gaze_shown:  # the gaze reaches the looked-at object's box
                head_r = max(2.0, min(person[2] - person[0], person[3] - person[1]) * 0.16)
                head = ((person[0] + person[2]) / 2, person[1] + head_r)
                draw_gaze_ray(draw, head, tuple(gb), width=max(2, size // 48))
            for k in range(n_obj):
                if front[k]:
                    draw_shape(
                        draw, drawing[cls[k]][0], COLOURS[drawing[cls[k]][1]], tuple(boxes[k])
                    )
            hand = (person[2], person[1] + 0.4 * (person[3] - person[1]))
            entries = []
            for k in range(n_obj):
                labs, b, e = contact[k]
                active = [CONTACTING[i] for i in labs] if b <= f < e else ["not_contacting"]
                for j, name in enumerate(a for a in active if a != "not_contacting"):
                    colour, pattern = contact_styles[name]
                    ob = boxes[k]
                    draw_glyph(
                        draw,
                        (hand[0], hand[1] + 3 * j),
                        ((ob[0] + ob[2]) / 2, (ob[1] + ob[3]) / 2),
                        colour,
                        pattern,
                        width=max(2, size // 64),
                        period=max(6.0, size / 24),
                    )
                    # the glyph's end mark: the touched object's box outlined in its colour
                    # with its pattern's inner mark (a second label's inside the first), so
                    # the contact and which one it is are seen in the object's own features
                    # and not only along a line shared with other pairs
                    draw_end_mark(
                        draw, tuple(ob), colour, pattern, inset=3 * j, width=max(2, size // 48)
                    )
                att = (
                    "unsure"
                    if not gaze_shown
                    else ("looking_at" if k == target else "not_looking_at")
                )
                x1, y1 = float(round(boxes[k][0], 2)), float(round(boxes[k][1], 2))
                w, h = (
                    float(round(boxes[k][2] - boxes[k][0], 2)),
                    float(round(boxes[k][3] - boxes[k][1], 2)),
                )
                entries.append(
                    {
                        "class": cls[k],
                        "bbox": (x1, y1, w, h),
                        "attention_relationship": [att],
                        "spatial_relationship": _spatial(boxes[k], person, bool(front[k])),
                        "contacting_relationship": active,
                        "visible": True,
                        "metadata": {"tag": key, "set": split},
                    }
                )
            objects[key] = entries
            persons[key] = {
                "bbox": person.astype(np.float32)[None],
                "bbox_size": (size, size),
                "bbox_mode": "xyxy",
            }
            path = out / "frames" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path.with_name(path.name + ".tmp"), format="JPEG", quality=jpeg_quality)
            os.replace(path.with_name(path.name + ".tmp"), path)

    def dump(name: str, obj: object) -> None:
        tmp = ann / (name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(obj, fh, protocol=4)
        os.replace(tmp, ann / name)

    dump("object_bbox_and_relationship.pkl", objects)
    small = {
        k: [o for o in objs if min(o["bbox"][2], o["bbox"][3]) > 16]  # type: ignore[index]
        for k, objs in objects.items()
    }
    dump("object_bbox_and_relationship_filtersmall.pkl", small)
    dump("person_bbox.pkl", persons)
    (ann / "frame_list.txt").write_text("\n".join(keys) + "\n")
    vocab = ag_vocabulary(out)
    truth: dict[str, list[VideoSceneGraph]] = {"train": [], "test": []}
    for split in ("train", "test"):
        grouped: dict[str, list] = {}
        for key in sorted(objects):
            if objects[key][0]["metadata"]["set"] != split:  # type: ignore[index]
                continue
            g = _frame_graph(key, objects[key], persons[key], vocab, "<memory>", "<memory>", None)
            grouped.setdefault(key.split("/")[0], []).append(g)
        truth[split] = [
            VideoSceneGraph(v, fr, [x.extras["frame_id"] for x in fr])
            for v, fr in grouped.items()
            if len(fr) >= 3
        ]
    return SynthAGInfo(out, vocab, truth, time.perf_counter() - t0)
