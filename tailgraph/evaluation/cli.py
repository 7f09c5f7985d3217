"""``tailgraph evaluate``: score a prediction file against ground truth.

    tailgraph evaluate --protocol vg --mode predcls --gt GT --pred PRED.json [--format vg]
                       [--split test] [--zeroshot TRIPLETS.json] [--json OUT.json] [-k 20 50 100]

GT is tailgraph's ground-truth file (``tailgraph.interchange`` JSON, or the binary format of
``tailgraph.binformat``: ``.h5`` / ``.npz``) or a data set folder read with ``--format``; PRED
is tailgraph's prediction file, JSON or binary by extension (binary files are read in chunks
of images, so memory stays bounded by a chunk); TRIPLETS a JSON list of
``[subject_class, object_class, predicate]``. The output JSON has flat keys with fractions in
[0, 1] (``R@K``, ``mR@K``, ``ngR@K``, ``ng-mR@K``, ``zR@K``, ``ng-zR@K``, ``A@K`` and
``per_predicate_R@K`` lists for the vg protocol).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailgraph.errors import DataError

__all__ = ["main"]

# Protocols whose evaluator exists; see tailgraph.evaluation.
PROTOCOLS = ("vg", "ag", "vidvrd", "oi")


def _load_gt(args: argparse.Namespace):
    path = Path(args.gt)
    if path.is_dir():
        if not args.format:
            raise DataError(
                "GT is a folder: say which data set format it is with --format",
                file=str(path),
                field="--format",
            )
        from tailgraph.data import load_dataset

        graphs, vocab = load_dataset(args.format, str(path), args.split, layout_only=True)
        from tailgraph.structures import VideoSceneGraph

        if graphs and isinstance(graphs[0], VideoSceneGraph):  # frame-level protocols (AG)
            graphs = [f for v in graphs for f in v.frames]
        return graphs, vocab
    from tailgraph.binformat import is_binary

    if is_binary(path):
        from tailgraph.binformat import read_ground_truth_binary
        from tailgraph.vocab import Vocabulary

        graphs, meta = read_ground_truth_binary(path)
        preds_ = meta["predicates"]
        classes = meta["object_classes"]
        vocab = Vocabulary(
            classes,
            preds_,
            predicate_background=bool(preds_) and preds_[0] == "__background__",
            has_background=bool(classes) and classes[0] == "__background__",
        )
        protocol = meta.get("protocol")
    else:
        from tailgraph.interchange import read_ground_truth

        graphs, vocab, protocol = read_ground_truth(path)
    if protocol != args.protocol:
        raise DataError(
            f"ground truth is for protocol {protocol!r}, not {args.protocol!r}",
            file=str(path),
            field="protocol",
        )
    return graphs, vocab


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--mode", default="predcls", choices=("predcls", "sgcls", "sgdet"))
    p.add_argument(
        "--gt", required=True, help="ground-truth JSON, or a data set folder (with --format)"
    )
    p.add_argument(
        "--pred", required=True, help="prediction file (.json, .json.gz, .h5, .hdf5 or .npz)"
    )
    p.add_argument("--format", default=None, help="data set format of a GT folder (vg)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--zeroshot", default=None, help="JSON list of [subject_class, object_class, predicate]"
    )
    p.add_argument("--json", default=None, help="write the metrics here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument(
        "-k", type=int, nargs="+", default=None, help="K values (vg: 20 50 100; ag: 10 20 50)"
    )
    p.add_argument(
        "--semi-threshold", type=float, default=0.9, help="ag: threshold of the semi constraint"
    )
    p.add_argument(
        "--attention-softmax",
        action="store_true",
        help="ag: softmax the attention columns (STTran)",
    )
    p.add_argument(
        "--ignore",
        nargs="*",
        default=["under"],
        help="oi: predicates left out of mAP* (default: under)",
    )
    a = p.parse_args(argv)
    from tailgraph.interchange import read_predictions, write_json

    ks = a.k or ([10, 20, 50] if a.protocol == "ag" else [20, 50, 100])
    try:
        from tailgraph.evaluation.vg import _check_ks

        ks = list(_check_ks(ks))
        if a.json:
            from tailgraph.outputs import claim_file

            claim_file(a.json, a.overwrite, field="--json")
        if a.protocol == "ag" and not (0.0 <= a.semi_threshold <= 1.0):
            raise DataError(
                f"must be within [0, 1], got {a.semi_threshold}", field="--semi-threshold"
            )
        if a.protocol == "vidvrd":
            result = _run_vidvrd(a)
            if a.json:
                write_json(a.json, result)
                print(f"metrics: {a.json}")
            return 0
        graphs, vocab = _load_gt(a)
        from tailgraph.binformat import is_binary

        if is_binary(a.pred):
            result = _run_binary(a, graphs, vocab, ks)
            if a.json:
                write_json(a.json, result)
                print(f"metrics: {a.json}")
            return 0
        preds = read_predictions(
            a.pred, num_classes=vocab.num_classes, num_predicates=vocab.num_predicates
        )
        if a.protocol == "oi":
            from tailgraph.evaluation.openimages import evaluate_oi

            result = evaluate_oi(
                graphs,
                preds,
                vocab.predicates,
                ignore=a.ignore,
                background=vocab.predicate_background,
            )
            _print_oi(result)
        elif a.protocol == "ag":
            from tailgraph.evaluation.ag import evaluate_ag

            result = evaluate_ag(
                graphs,
                preds,
                mode=a.mode,
                ks=ks,
                semi_threshold=a.semi_threshold,
                attention_softmax=a.attention_softmax,
            )
            _print_ag(result, ks, a.mode)
        else:
            from tailgraph.evaluation.vg import evaluate_vg

            zs = _zeroshot(a)
            result = evaluate_vg(
                graphs,
                preds,
                mode=a.mode,
                ks=ks,
                zeroshot_triplets=zs,
                num_predicates=vocab.num_predicates,
            )
            _print_vg(result, ks, a.mode)
    except DataError as exc:
        if exc.field == "image_id" and exc.file in (None, a.pred):
            # matching predictions to ground truth: either file can be the wrong one
            exc = DataError(
                str(exc).split(": ", 1)[-1] if exc.file or exc.sample is not None else str(exc),
                file=f"{a.pred} (ground truth {a.gt})",
                sample=exc.sample,
                field=exc.field,
            )
        print(f"tailgraph evaluate: {exc}", file=sys.stderr)
        return 2
    if a.json:
        write_json(a.json, result)
        print(f"metrics: {a.json}")
    return 0


def _zeroshot(a: argparse.Namespace) -> list | None:
    if not a.zeroshot:
        return None
    from tailgraph.interchange import read_json

    zs = read_json(a.zeroshot)
    if not isinstance(zs, list) or not all(
        isinstance(t, list)
        and len(t) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in t)
        for t in zs
    ):
        raise DataError(
            "expected a list of [subject_class, object_class, predicate] integers",
            file=a.zeroshot,
        )
    return zs


def _gt_index(graphs: list) -> dict:
    return {(g["image_id"] if isinstance(g, dict) else g.image_id): i for i, g in enumerate(graphs)}


def _stream(a: argparse.Namespace, graphs: list, vocab, check_scores: bool):
    """Chunks of ``(gt indices, gts, predictions)`` from a binary prediction file, every
    prediction matched to its GT image; at the end, a GT image never predicted is an error."""
    from tailgraph.binformat import BinaryReader

    index = _gt_index(graphs)
    seen = [False] * len(graphs)
    with BinaryReader(
        a.pred,
        kind="predictions",
        num_classes=vocab.num_classes,
        num_predicates=vocab.num_predicates,
        check_scores=check_scores,
    ) as r:
        from tailgraph.progress import track

        for chunk in track(r.chunks(64), "evaluate", total=len(graphs), unit="img", weight=len):
            idx = []
            for pred in chunk:
                gi = index.get(pred["image_id"])
                if gi is None:
                    raise DataError(
                        "prediction for an image that is not in the ground truth",
                        file=a.pred,
                        sample=pred["image_id"],
                        field="image_id",
                    )
                seen[gi] = True
                idx.append(gi)
            yield idx, [graphs[i] for i in idx], chunk
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        g = graphs[missing[0]]
        raise DataError(
            f"no prediction for this ground-truth image ({len(missing)} missing)",
            file=a.pred,
            sample=g["image_id"] if isinstance(g, dict) else g.image_id,
            field="image_id",
        )


def _run_binary(a: argparse.Namespace, graphs: list, vocab, ks: list[int]) -> dict:
    """Evaluate a binary prediction file chunk by chunk (vg, ag, oi)."""
    try:
        if a.protocol == "vg":
            from tailgraph.evaluation.vg import VGEvaluator, validated_item

            ev = VGEvaluator(a.mode, ks, _zeroshot(a), num_predicates=vocab.num_predicates)
            ncol = vocab.num_predicates
            # the evaluator checks NaN / inf itself, in the same pass as its ranking
            for idx, gts, preds in _stream(a, graphs, vocab, check_scores=False):
                items = []
                for g, q in zip(gts, preds):
                    item, ncol = validated_item(g, q, a.mode, ncol)
                    items.append(item)
                ev.update_items(items, order=idx)
            result = ev.compute()
            _print_vg(result, ks, a.mode)
        elif a.protocol == "ag":
            from tailgraph.evaluation.ag import AGEvaluator

            evs = {
                c: AGEvaluator(
                    c, a.mode, ks, a.semi_threshold, attention_softmax=a.attention_softmax
                )
                for c in ("with", "semi", "no")
            }
            for idx, gts, preds in _stream(a, graphs, vocab, check_scores=True):
                for ev in evs.values():
                    for gi, g, q in zip(idx, gts, preds):
                        ev.update_frame(g, q, order=gi)
            result = {c: ev.compute() for c, ev in evs.items()}
            _print_ag(result, ks, a.mode)
        else:
            import numpy as np

            from tailgraph.evaluation.openimages import ap_metrics, collect_pairs

            nr = vocab.num_predicates
            blocks = []
            missed = np.zeros(nr, dtype=np.int64)
            for idx, gts, preds in _stream(a, graphs, vocab, check_scores=True):
                for gi, g, q in zip(idx, gts, preds):
                    sc, lab, mi = collect_pairs([g], [q], nr, vocab.predicate_background)
                    blocks.append((gi, sc, lab))
                    missed += mi
            blocks.sort(key=lambda b: b[0])  # the ground truth's order, as the JSON path
            scores = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros((0, nr))
            labels = (
                np.concatenate([b[2] for b in blocks]) if blocks else np.zeros((0, nr), dtype=bool)
            )
            result = ap_metrics(
                scores, labels, missed, vocab.predicates, a.ignore, vocab.predicate_background
            )
            _print_oi(result)
    except DataError as exc:
        raise exc.with_context(file=a.pred) from None
    return result


def _print_oi(result: dict) -> None:
    print(
        f"oi: {result['num_pairs']} candidate pairs, {result['num_positive_pairs']} "
        "positive (percent)"
    )
    for key in ("mAP", "mAP*", "mAP_FG", "mAP*_FG"):
        print(f"{key:<10}{100 * result[key]:>9.2f}")


def _run_vidvrd(a: argparse.Namespace) -> dict:
    """GT: tailgraph JSON with ``"protocol": "vidvrd"`` and ``"videos"`` (video id → relation
    instances), a ``vidvrd_ground_truth`` binary file or a VidVRD folder; predictions: the
    official VidVRD results JSON or a ``vidvrd_results`` binary file (read video by video)."""
    from tailgraph.binformat import BinaryReader, is_binary, read_vidvrd_binary
    from tailgraph.evaluation.vidvrd import (
        aggregate_video_stats,
        evaluate_vidvrd,
        read_vidvrd_results,
        video_stats,
    )
    from tailgraph.interchange import FORMAT, read_json

    if Path(a.gt).is_dir():
        from tailgraph.data.vidvrd import load_vidvrd, to_groundtruth

        videos, vocab = load_vidvrd(a.gt, a.split)
        doc = {
            "format": FORMAT,
            "protocol": "vidvrd",
            "videos": to_groundtruth(videos),
            "predicates": vocab.predicates[1:],
        }
    elif is_binary(a.gt):
        gt_videos, meta = read_vidvrd_binary(a.gt, "vidvrd_ground_truth")
        doc = {
            "format": FORMAT,
            "protocol": "vidvrd",
            "videos": gt_videos,
            "predicates": meta.get("predicates"),
        }
    else:
        doc = read_json(a.gt)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("protocol") != "vidvrd":
        raise DataError(
            f'expected a {FORMAT} ground-truth file with "protocol": "vidvrd"',
            file=a.gt,
            field="protocol",
        )
    if not isinstance(doc.get("videos"), dict):
        raise DataError(
            "expected 'videos' (video id -> relation instances)", file=a.gt, field="videos"
        )
    gt = doc["videos"]
    try:
        if is_binary(a.pred):
            order = {vid: i for i, vid in enumerate(gt)}
            stats: dict[int, object] = {}
            with BinaryReader(a.pred, kind="vidvrd_results") as r:
                for vid, rels in r.videos():
                    i = order.get(vid, order.get(str(vid)))
                    if i is None:
                        continue  # as the reference: predictions for other videos are ignored
                    g = gt[vid] if vid in gt else gt[str(vid)]
                    if g:
                        stats[i] = video_stats(g, rels, vid)
            for vid, g in gt.items():  # GT videos without predictions: an empty list
                if g and order[vid] not in stats:
                    stats[order[vid]] = video_stats(g, [], vid)
            result = aggregate_video_stats(
                [stats[i] for i in sorted(stats)], predicates=doc.get("predicates")
            )
        else:
            preds = read_vidvrd_results(a.pred)
            result = evaluate_vidvrd(gt, preds, predicates=doc.get("predicates"))
    except DataError as exc:
        raise exc.with_context(file=a.pred) from None
    print(f"vidvrd: {result['num_videos']} videos evaluated (percent)")
    for key in (
        "RelDet_mAP",
        "RelDet_R@50",
        "RelDet_R@100",
        "RelTag_P@1",
        "RelTag_P@5",
        "RelTag_P@10",
        "mR@50",
        "mR@100",
        "Mean",
    ):
        print(f"{key:<14}{100 * result[key]:>9.2f}")
    return result


def _print_vg(metrics: dict, ks: list[int], mode: str) -> None:
    keys = [k for k in ("R", "mR", "ngR", "ng-mR", "zR", "ng-zR", "A") if f"{k}@{ks[0]}" in metrics]
    print(f"vg {mode}: {metrics['num_images']} images evaluated (percent)")
    print(f"{'metric':<8}" + "".join(f"{'@' + str(k):>9}" for k in ks))
    for key in keys:
        print(f"{key:<8}" + "".join(f"{100 * metrics[f'{key}@{k}']:>9.2f}" for k in ks))


def _print_ag(result: dict, ks: list[int], mode: str) -> None:
    frames = next(iter(result.values()))["num_frames"]
    print(f"ag {mode}: {frames} frames evaluated (percent)")
    print(
        f"{'constraint':<12}"
        + "".join(f"{'R@' + str(k):>9}" for k in ks)
        + "".join(f"{'mR@' + str(k):>9}" for k in ks)
    )
    for c, m in result.items():
        print(
            f"{c:<12}"
            + "".join(f"{100 * m[f'R@{k}']:>9.2f}" for k in ks)
            + "".join(f"{100 * m[f'mR@{k}']:>9.2f}" for k in ks)
        )
