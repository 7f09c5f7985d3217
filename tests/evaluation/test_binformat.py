"""The binary interchange format: round trips, `tailgraph evaluate` on it equals the JSON path
for every protocol (in any prediction order), validation errors name file / sample / field,
streaming reads are memory-mapped, and `tailgraph convert` is atomic and refuses to clobber."""

import json
import zipfile

import h5py
import numpy as np
import pytest

from tailgraph.cli import main as tailgraph_main
from tailgraph.errors import DataError
from tailgraph.io.binformat import (
    BinaryReader,
    ground_truth_arrays,
    predictions_arrays,
    write_binary,
)
from tailgraph.io.interchange import FORMAT, write_json

from .test_vg_metrics import random_case

CLASSES = ["__background__"] + [f"c{i}" for i in range(1, 8)]
PREDICATES = ["__background__"] + [f"p{i}" for i in range(1, 6)]


def _gt_doc(gts, protocol="vg", classes=CLASSES, predicates=PREDICATES):
    images = []
    for g in gts:
        d = {
            "image_id": g["image_id"],
            "width": 100,
            "height": 100,
            "boxes": np.asarray(g["boxes"]).tolist(),
            "labels": np.asarray(g["labels"]).tolist(),
            "relations": np.asarray(g["relations"]).reshape(-1, 3).tolist(),
        }
        for k in ("video_id", "frame_id"):
            if k in g:
                d[k] = g[k]
        images.append(d)
    return {
        "format": FORMAT,
        "protocol": protocol,
        "object_classes": classes,
        "predicates": predicates,
        "images": images,
    }


def _pred_doc(preds):
    return {
        "format": FORMAT,
        "images": [
            {k: (np.asarray(v).tolist() if k != "image_id" else v) for k, v in p.items()}
            for p in preds
        ],
    }


def _evaluate(tmp_path, name, args):
    out = tmp_path / f"{name}.metrics.json"
    assert tailgraph_main(["evaluate", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


_WITHOUT_TORCH = (
    "import sys\n"
    "from tailgraph.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "assert 'torch' not in sys.modules, 'tailgraph evaluate imported torch'\n"
    "sys.exit(rc)\n"
)


def _evaluate_fresh(tmp_path, name, args):
    """``tailgraph evaluate`` in a new process, which must not import torch: with binary
    predictions (and JSON or binary ground truth) the evaluation is numpy only — a fresh
    command pays for numpy and h5py, not for the model stack."""
    import subprocess
    import sys

    out = tmp_path / f"{name}.metrics.json"
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, "evaluate", *args, "--json", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("ext", [".h5", ".npz"])
@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
def test_vg_binary_equals_json_in_any_order(tmp_path, ext, mode):
    rng = np.random.default_rng(4)
    gts, preds = random_case(rng, 30, mode)
    write_json(tmp_path / "gt.json", _gt_doc(gts))
    write_json(tmp_path / "pred.json", _pred_doc(preds))
    ref = _evaluate(
        tmp_path,
        "json",
        [
            "--protocol",
            "vg",
            "--mode",
            mode,
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "pred.json"),
        ],
    )
    # convert both, and also shuffle the binary predictions
    assert tailgraph_main(["convert", str(tmp_path / "gt.json"), str(tmp_path / f"gt{ext}")]) == 0
    perm = rng.permutation(len(preds))
    write_binary(
        tmp_path / f"pred{ext}", "predictions", predictions_arrays([preds[i] for i in perm])
    )
    out = _evaluate_fresh(
        tmp_path,
        "bin",
        [
            "--protocol",
            "vg",
            "--mode",
            mode,
            "--gt",
            str(tmp_path / f"gt{ext}"),
            "--pred",
            str(tmp_path / f"pred{ext}"),
        ],
    )
    assert out == ref
    # JSON GT with binary predictions too
    out2 = _evaluate_fresh(
        tmp_path,
        "mixed",
        [
            "--protocol",
            "vg",
            "--mode",
            mode,
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / f"pred{ext}"),
        ],
    )
    assert out2 == ref


def test_round_trip_json_h5_npz_json(tmp_path):
    rng = np.random.default_rng(0)
    gts, preds = random_case(rng, 6, "sgdet")
    for g in gts:
        g["video_id"], g["frame_id"] = "v1", f"{g['image_id']:06d}"
    write_json(tmp_path / "gt.json", _gt_doc(gts, protocol="ag"))
    write_json(tmp_path / "pred.json", _pred_doc(preds))
    for stem in ("gt", "pred"):
        assert (
            tailgraph_main(
                ["convert", str(tmp_path / f"{stem}.json"), str(tmp_path / f"{stem}.h5")]
            )
            == 0
        )
        assert (
            tailgraph_main(["convert", str(tmp_path / f"{stem}.h5"), str(tmp_path / f"{stem}.npz")])
            == 0
        )
        assert (
            tailgraph_main(
                ["convert", str(tmp_path / f"{stem}.npz"), str(tmp_path / f"{stem}2.json.gz")]
            )
            == 0
        )
        a = json.loads((tmp_path / f"{stem}.json").read_text())
        import gzip

        b = json.loads(gzip.open(tmp_path / f"{stem}2.json.gz", "rt").read())
        assert a == b


def test_ag_and_oi_binary_equal_json(tmp_path):
    from .test_ag_metrics import test_matches_loop_reference_on_random_frames  # noqa: F401 - same generator below

    rng = np.random.default_rng(3)
    gts, preds = [], []
    for f in range(20):
        n = int(rng.integers(1, 5))
        xy = rng.integers(0, 50, size=(n + 1, 2))
        boxes = np.concatenate([xy, xy + rng.integers(10, 40, size=(n + 1, 2))], 1).astype(
            np.float32
        )
        labels = np.asarray([1] + rng.integers(2, 8, n).tolist())
        rels = [[0, i, int(rng.integers(0, 3))] for i in range(1, n + 1)] + [
            [i, 0, 3 + int(rng.integers(0, 6))] for i in range(1, n + 1)
        ]
        s = rng.random((n, 26)).astype(np.float32)
        gts.append(
            {
                "image_id": f,
                "boxes": boxes,
                "labels": labels,
                "relations": np.asarray(rels),
                "video_id": "v",
                "frame_id": str(f),
            }
        )
        preds.append(
            {
                "image_id": f,
                "boxes": boxes,
                "labels": labels,
                "label_scores": np.ones(n + 1, np.float32),
                "pairs": np.asarray([[0, i] for i in range(1, n + 1)]),
                "predicate_scores": s,
            }
        )
    ag_preds = ["__background__"] + [f"r{i}" for i in range(26)]
    write_json(tmp_path / "gt.json", _gt_doc(gts, "ag", CLASSES, [f"r{i}" for i in range(26)]))
    write_json(tmp_path / "pred.json", _pred_doc(preds))
    ref = _evaluate(
        tmp_path,
        "ag_json",
        [
            "--protocol",
            "ag",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "pred.json"),
        ],
    )
    perm = rng.permutation(len(preds))
    write_binary(tmp_path / "pred.npz", "predictions", predictions_arrays([preds[i] for i in perm]))
    out = _evaluate_fresh(
        tmp_path,
        "ag_bin",
        [
            "--protocol",
            "ag",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "pred.npz"),
        ],
    )
    assert out == ref
    assert tailgraph_main(["convert", str(tmp_path / "gt.json"), str(tmp_path / "gt.h5")]) == 0
    args = [
        "--protocol",
        "ag",
        "--gt",
        str(tmp_path / "gt.h5"),
        "--pred",
        str(tmp_path / "pred.npz"),
    ]
    assert _evaluate_fresh(tmp_path, "ag_fresh", args) == ref
    # Open Images: the same frames as an exhaustive-pair set with a background column
    del ag_preds
    oi_gts = [
        {
            **g,
            "relations": np.asarray([[0, 1, 1], [1, 0, 2]])
            if len(g["labels"]) > 1
            else np.zeros((0, 3), int),
        }
        for g in gts
    ]
    oi_preds = []
    for g, p in zip(gts, preds):
        n = len(g["labels"])
        pairs = np.asarray([(a, b) for a in range(n) for b in range(n) if a != b]).reshape(-1, 2)
        oi_preds.append(
            {
                **p,
                "pairs": pairs,
                "predicate_scores": rng.random((len(pairs), 4)).astype(np.float32),
            }
        )
    write_json(
        tmp_path / "oigt.json",
        _gt_doc(oi_gts, "oi", CLASSES, ["__background__", "on", "under", "holds"]),
    )
    write_json(tmp_path / "oipred.json", _pred_doc(oi_preds))
    ref = _evaluate(
        tmp_path,
        "oi_json",
        [
            "--protocol",
            "oi",
            "--gt",
            str(tmp_path / "oigt.json"),
            "--pred",
            str(tmp_path / "oipred.json"),
        ],
    )
    write_binary(
        tmp_path / "oipred.h5", "predictions", predictions_arrays([oi_preds[i] for i in perm])
    )
    out = _evaluate_fresh(
        tmp_path,
        "oi_bin",
        [
            "--protocol",
            "oi",
            "--gt",
            str(tmp_path / "oigt.json"),
            "--pred",
            str(tmp_path / "oipred.h5"),
        ],
    )
    assert out == ref
    assert tailgraph_main(["convert", str(tmp_path / "oigt.json"), str(tmp_path / "oigt.npz")]) == 0
    args = ["--protocol", "oi", "--gt", str(tmp_path / "oigt.npz")]
    assert (
        _evaluate_fresh(tmp_path, "oi_fresh", args + ["--pred", str(tmp_path / "oipred.h5")]) == ref
    )


def test_vidvrd_binary_equals_json(tmp_path):
    from .test_vidvrd_metrics import rel

    rng = np.random.default_rng(1)
    gt, res = {}, {}
    for v in range(6):
        g, r = [], []
        for i in range(4):
            b = int(rng.integers(0, 20))
            e = b + int(rng.integers(3, 12))
            box = rng.integers(0, 50, 2).tolist()
            box = box + [box[0] + 20, box[1] + 20]
            t = ["dog", ["chase", "watch"][i % 2], "cat"]
            g.append(rel(t, b, e, box))
            r.append(
                rel(
                    t,
                    b + int(rng.integers(0, 2)),
                    e,
                    [x + float(rng.normal(0, 2)) for x in box],
                    score=float(rng.random()),
                )
            )
        gt[f"vid{v}"], res[f"vid{v}"] = g, r
    write_json(
        tmp_path / "gt.json",
        {
            "format": FORMAT,
            "protocol": "vidvrd",
            "videos": gt,
            "predicates": ["chase", "watch", "sit"],
        },
    )
    write_json(tmp_path / "res.json", {"version": "VERSION 1.0", "results": res})
    ref = _evaluate(
        tmp_path,
        "v_json",
        [
            "--protocol",
            "vidvrd",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "res.json"),
        ],
    )
    assert tailgraph_main(["convert", str(tmp_path / "res.json"), str(tmp_path / "res.h5")]) == 0
    assert tailgraph_main(["convert", str(tmp_path / "gt.json"), str(tmp_path / "gt.npz")]) == 0
    out = _evaluate_fresh(
        tmp_path,
        "v_bin",
        [
            "--protocol",
            "vidvrd",
            "--gt",
            str(tmp_path / "gt.npz"),
            "--pred",
            str(tmp_path / "res.h5"),
        ],
    )
    assert out == ref and ref["RelDet_R@50"] > 0


def _pred_file(tmp_path, ext=".h5", **override):
    rng = np.random.default_rng(0)
    gts, preds = random_case(rng, 4, "sgdet")
    arrays = predictions_arrays(preds)
    arrays.update(override)
    write_json(tmp_path / "gt.json", _gt_doc(gts))
    path = tmp_path / f"pred{ext}"
    write_binary(path, "predictions", arrays)
    return path, arrays


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda a: {"labels": a["labels"].astype(np.float32)}, "labels"),
        (
            lambda a: {"labels": np.where(np.arange(a["labels"].size) == 3, 99, a["labels"])},
            "labels",
        ),
        (
            lambda a: {
                "pairs": np.where(np.arange(a["pairs"].size).reshape(-1, 2) == 5, 50, a["pairs"])
            },
            "pairs",
        ),
        (
            lambda a: {
                "pairs": np.where(np.arange(a["pairs"].size).reshape(-1, 2) == 7, -1, a["pairs"])
            },
            "pairs",
        ),
        # a box of the next image: inside the file, outside its own image
        (
            lambda a: {
                "pairs": np.where(
                    np.arange(a["pairs"].size).reshape(-1, 2) == 2 * (a["pair_offsets"][1] - 1),
                    np.diff(a["box_offsets"])[0],
                    a["pairs"],
                )
            },
            "pairs",
        ),
        (
            lambda a: {
                "predicate_scores": np.where(
                    np.arange(a["predicate_scores"].size).reshape(a["predicate_scores"].shape)
                    == 40,
                    np.nan,
                    a["predicate_scores"],
                ).astype(np.float32)
            },
            "predicate_scores",
        ),
        (lambda a: {"pair_offsets": a["pair_offsets"][::-1].copy()}, "pair_offsets"),
        (lambda a: {"boxes": a["boxes"][:-1]}, "boxes"),
        (lambda a: {"image_ids": np.zeros_like(a["image_ids"])}, "image_ids"),
        (lambda a: {"predicate_scores": a["predicate_scores"][:, :3]}, "predicate_scores"),
    ],
)
@pytest.mark.parametrize("ext", [".h5", ".npz"])
def test_bad_binary_predictions_are_one_line_errors(tmp_path, capsys, change, field, ext):
    rng = np.random.default_rng(0)
    _, preds = random_case(rng, 4, "sgdet")
    path, _ = _pred_file(tmp_path, ext, **change(predictions_arrays(preds)))
    capsys.readouterr()
    rc = tailgraph_main(
        [
            "evaluate",
            "--protocol",
            "vg",
            "--mode",
            "sgdet",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(path),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert str(path) in err and f"'{field}'" in err, err


def test_truncated_foreign_and_missing_files(tmp_path, capsys):
    path, _ = _pred_file(tmp_path, ".h5")
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    npz, _ = _pred_file(tmp_path, ".npz")
    (tmp_path / "cut.npz").write_bytes(npz.read_bytes()[:5000])
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.zeros(3)
    (tmp_path / "dir.h5").mkdir()
    for name in ("cut.h5", "cut.npz", "foreign.npz", "foreign.h5", "dir.h5", "missing.npz"):
        capsys.readouterr()
        rc = tailgraph_main(
            [
                "evaluate",
                "--protocol",
                "vg",
                "--gt",
                str(tmp_path / "gt.json"),
                "--pred",
                str(tmp_path / name),
            ]
        )
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and name in err, (name, err)


def test_missing_and_extra_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    gts, preds = random_case(rng, 4, "sgdet")
    write_json(tmp_path / "gt.json", _gt_doc(gts))
    write_binary(tmp_path / "few.h5", "predictions", predictions_arrays(preds[:3]))
    write_binary(
        tmp_path / "extra.h5",
        "predictions",
        predictions_arrays(preds + [{**preds[0], "image_id": 99}]),
    )
    for name, msg in (("few.h5", "no prediction"), ("extra.h5", "not in the ground truth")):
        capsys.readouterr()
        assert (
            tailgraph_main(
                [
                    "evaluate",
                    "--protocol",
                    "vg",
                    "--gt",
                    str(tmp_path / "gt.json"),
                    "--pred",
                    str(tmp_path / name),
                ]
            )
            == 2
        )
        assert msg in capsys.readouterr().err


def test_reads_are_memory_mapped_and_compressed_npz_streams(tmp_path):
    path, arrays = _pred_file(tmp_path, ".npz")
    with BinaryReader(path) as r:
        assert r.store._mapped("predicate_scores") is not None
        first = [x for c in r.chunks(3) for x in c]
    # a compressed .npz written by numpy itself is read through the zip stream
    meta = np.asarray(json.dumps({"format": "tailgraph-sg-bin/1", "kind": "predictions"}))
    np.savez_compressed(tmp_path / "z.npz", __meta__=meta, **arrays)
    assert zipfile.ZipFile(tmp_path / "z.npz").infolist()[1].compress_type == zipfile.ZIP_DEFLATED
    with BinaryReader(tmp_path / "z.npz") as r:
        assert r.store._mapped("predicate_scores") is None
        second = [x for c in r.chunks(3) for x in c]
    for a, b in zip(first, second):
        assert (
            np.array_equal(a["predicate_scores"], b["predicate_scores"])
            and a["image_id"] == b["image_id"]
        )


def test_convert_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    gts, preds = random_case(rng, 3, "predcls")
    write_json(tmp_path / "pred.json", _pred_doc(preds))
    assert tailgraph_main(["convert", str(tmp_path / "pred.json"), str(tmp_path / "pred.h5")]) == 0
    assert tailgraph_main(["convert", str(tmp_path / "pred.json"), str(tmp_path / "pred.h5")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (
        tailgraph_main(
            ["convert", str(tmp_path / "pred.json"), str(tmp_path / "pred.h5"), "--overwrite"]
        )
        == 0
    )
    bad = _pred_doc(preds)
    bad["images"][1]["predicate_scores"][0][0] = "x"
    write_json(tmp_path / "bad.json", bad)
    assert tailgraph_main(["convert", str(tmp_path / "bad.json"), str(tmp_path / "out.npz")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "pred.h5", "pred.json"]
    with pytest.raises(DataError, match="ids must be all"):
        ground_truth_arrays(
            [
                {**gts[0], "width": 1, "height": 1, "image_id": 1},
                {**gts[1], "width": 1, "height": 1, "image_id": "b"},
            ]
        )


def test_ground_truth_box_far_outside_its_image_is_an_error_and_extreme_predictions_match_nothing(
    tmp_path, capsys, recwarn
):
    rng = np.random.default_rng(0)
    gts, preds = random_case(rng, 4, "sgdet")
    arrays = ground_truth_arrays([{**g, "width": 100, "height": 100} for g in gts])
    meta = {"protocol": "vg", "object_classes": CLASSES, "predicates": PREDICATES}
    ok = tmp_path / "gt.h5"
    write_binary(ok, "ground_truth", arrays, meta)
    far = arrays["boxes"].copy()
    far[-1, 3] = 1e12  # the last image's last box: x1 y1 x2 y2 with y2 far below its image
    bad = tmp_path / "far.h5"
    write_binary(bad, "ground_truth", {**arrays, "boxes": far}, meta)
    extreme = predictions_arrays(preds)
    extreme["boxes"][:, 2:] = 3e38  # finite float32; every area overflows
    write_binary(tmp_path / "pred.h5", "predictions", extreme)
    args = ["evaluate", "--protocol", "vg", "--mode", "sgdet", "--pred", str(tmp_path / "pred.h5")]
    capsys.readouterr()
    assert tailgraph_main([*args, "--gt", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "far outside" in err and "'boxes'" in err, err
    assert str(gts[-1]["image_id"]) in err, err
    assert tailgraph_main([*args, "--gt", str(ok), "--json", str(tmp_path / "m.json")]) == 0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert json.loads((tmp_path / "m.json").read_text())["R@100"] == 0.0
    assert "RuntimeWarning" not in capsys.readouterr().err
