"""synth-ag: written in Action Genome's files, read back equal to the generator's truth."""

import pytest
import torch

from tailgraph.cli.synth import main as synth_main
from tailgraph.data.action_genome import load_ag
from tailgraph.data.synthetic.ag import generate_synth_ag

from ..helpers import tree_digest


def test_round_trip_determinism_and_label_structure(tmp_path):
    info = generate_synth_ag(tmp_path / "a", num_train=4, num_test=2, seed=5, image_size=96)
    assert tree_digest(info.root) == tree_digest(
        generate_synth_ag(tmp_path / "b", num_train=4, num_test=2, seed=5, image_size=96).root
    )
    for split in ("train", "test"):
        videos, vocab = load_ag(info.root, split, layout_only=False)
        truth = info.videos[split]
        assert [v.video_id for v in videos] == [v.video_id for v in truth] and videos
        for a, b in zip(videos, truth):
            assert len(a) == len(b) >= 8
            for fa, fb in zip(a.frames, b.frames):
                assert torch.equal(fa.relations, fb.relations) and torch.equal(fa.labels, fb.labels)
                assert torch.allclose(fa.boxes, fb.boxes)
                rel = fa.relations
                # one attention label per object, at most one looking_at per frame, >= 1 spatial
                # label each
                att = rel[rel[:, 2] < 3]
                assert sorted(att[:, 1].tolist()) == list(range(1, fa.num_boxes))
                assert int((att[:, 2] == 0).sum()) <= 1
                spa = rel[(rel[:, 2] >= 3) & (rel[:, 2] < 9)]
                assert (
                    set(spa[:, 0].tolist()) == set(range(1, fa.num_boxes))
                    and (spa[:, 1] == 0).all()
                )
    small, _ = load_ag(info.root, "train", filter_small_box=True)
    assert sum(f.num_boxes for v in small for f in v.frames) <= sum(
        f.num_boxes for v in info.videos["train"] for f in v.frames
    )


def test_cli(tmp_path, capsys):
    assert (
        synth_main(
            [
                "--variant",
                "synth-ag",
                "--out",
                str(tmp_path),
                "--train",
                "3",
                "--test",
                "1",
                "--size",
                "96",
                "--stats",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "synth-ag: wrote" in out and "not_contacting" in out


def test_contact_rings_sit_on_the_touched_object(tmp_path):
    """The contact cue is drawn where the pair's object is: a touched object's box border
    carries a glyph colour (after JPEG), a not-touched object's mostly does not."""
    import numpy as np
    from PIL import Image

    from tailgraph.data.synthetic.render import GLYPH_COLOURS

    info = generate_synth_ag(tmp_path / "a", num_train=6, num_test=1, seed=3, image_size=96)
    videos, vocab = load_ag(info.root, "train", layout_only=False)
    names = vocab.predicates
    contact = {i for i, n in enumerate(names) if i >= 9 and n != "not_contacting"}
    glyphs = np.array(list(GLYPH_COLOURS.values()), dtype=np.float32)
    ring: dict[bool, list] = {True: [], False: []}
    for v in videos:
        for f in v.frames:
            img = np.asarray(Image.open(f.image_path).convert("RGB")).astype(np.float32)
            rel = f.relations.tolist()
            for k in range(1, f.num_boxes):
                x1, y1, x2, y2 = (int(round(c)) for c in f.boxes[k].tolist())
                x2, y2 = min(x2, 95), min(y2, 95)
                border = np.concatenate(
                    [img[y1, x1:x2], img[y2, x1:x2], img[y1:y2, x1], img[y1:y2, x2]]
                )
                d = np.linalg.norm(border[:, None] - glyphs[None], axis=-1).min(1)
                touched = any(k in (s, o) and p in contact for s, o, p in rel)
                ring[touched].append(float((d < 60).mean()))
    assert len(ring[True]) > 20 and len(ring[False]) > 20
    assert np.mean(ring[True]) > 0.5 > 0.2 > np.mean(ring[False])


def test_end_marks_tell_the_pattern_apart_inside_the_box():
    """Each glyph pattern leaves its own mark inside the touched box (none, a centre disc, the
    diagonals, a band), so which contact it is can be read from the object's RoI alone: the
    four marks differ on a 7 x 7 grid over the box, and all keep the coloured border."""
    import numpy as np
    from PIL import Image, ImageDraw

    from tailgraph.data.synthetic.render import GLYPH_PATTERNS, draw_end_mark

    grids = {}
    for pattern in GLYPH_PATTERNS:
        img = Image.new("RGB", (56, 56))
        draw_end_mark(ImageDraw.Draw(img), (0, 0, 55, 55), "white", pattern, width=2)
        on = np.asarray(img)[..., 0] > 128
        grids[pattern] = on.reshape(7, 8, 7, 8).mean((1, 3)) > 0.2
        assert on[0].all() and on[:, 0].all()  # the border ring
    inner = {p: g[1:-1, 1:-1] for p, g in grids.items()}
    assert not inner["solid"].any()
    for a in GLYPH_PATTERNS:
        for b in GLYPH_PATTERNS:
            if a < b:
                assert (inner[a] != inner[b]).sum() >= 3, (a, b)
    with pytest.raises(ValueError, match="unknown glyph pattern"):
        draw_end_mark(ImageDraw.Draw(img), (0, 0, 55, 55), "white", "wavy")


def test_gaze_ray_ends_on_the_looked_at_box():
    """The gaze ray runs from the head to the border of the looked-at object's box."""
    import numpy as np
    from PIL import Image, ImageDraw

    from tailgraph.data.synthetic.render import GAZE_COLOUR, draw_gaze_ray

    for head, box in (((10, 10), (40, 30, 60, 50)), ((80, 70), (10, 5, 30, 20))):
        img = Image.new("RGB", (96, 96))
        draw_gaze_ray(ImageDraw.Draw(img), head, box, width=1)
        a = np.asarray(img)
        ys, xs = np.nonzero((a == GAZE_COLOUR).all(-1))
        assert len(xs) > 10
        x1, y1, x2, y2 = box
        inside = (xs > x1 + 1) & (xs < x2 - 1) & (ys > y1 + 1) & (ys < y2 - 1)
        assert not inside.any()  # the ray stops at the box
        far = np.argmax(np.hypot(xs - head[0], ys - head[1]))
        on_border = min(abs(xs[far] - x1), abs(xs[far] - x2), abs(ys[far] - y1), abs(ys[far] - y2))
        assert on_border <= 1
