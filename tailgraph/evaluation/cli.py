"""``tailgraph evaluate``: score a prediction file against ground truth.

    tailgraph evaluate --protocol vg --mode predcls --gt GT --pred PRED.json [--format vg]
                       [--split test] [--zeroshot TRIPLETS.json] [--json OUT.json] [-k 20 50 100]

GT is tailgraph's ground-truth JSON (``tailgraph.interchange``) or a data set folder read with
``--format``; PRED is tailgraph's prediction JSON; TRIPLETS a JSON list of
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
    p.add_argument("--pred", required=True, help="prediction JSON (.json or .json.gz)")
    p.add_argument("--format", default=None, help="data set format of a GT folder (vg)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--zeroshot", default=None, help="JSON list of [subject_class, object_class, predicate]"
    )
    p.add_argument("--json", default=None, help="write the metrics here")
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
    from tailgraph.interchange import read_json, read_predictions, write_json

    ks = a.k or ([10, 20, 50] if a.protocol == "ag" else [20, 50, 100])
    try:
        if a.protocol == "vidvrd":
            result = _run_vidvrd(a)
            if a.json:
                write_json(a.json, result)
                print(f"metrics: {a.json}")
            return 0
        graphs, vocab = _load_gt(a)
        preds = read_predictions(a.pred, num_predicates=vocab.num_predicates)
        if a.protocol == "oi":
            from tailgraph.evaluation.openimages import evaluate_oi

            result = evaluate_oi(
                graphs,
                preds,
                vocab.predicates,
                ignore=a.ignore,
                background=vocab.predicate_background,
            )
            print(
                f"oi: {result['num_pairs']} candidate pairs, {result['num_positive_pairs']} "
                "positive (percent)"
            )
            for key in ("mAP", "mAP*", "mAP_FG", "mAP*_FG"):
                print(f"{key:<10}{100 * result[key]:>9.2f}")
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

            zs = None
            if a.zeroshot:
                zs = read_json(a.zeroshot)
                if not isinstance(zs, list) or not all(
                    isinstance(t, list) and len(t) == 3 for t in zs
                ):
                    raise DataError(
                        "expected a list of [subject_class, object_class, predicate]",
                        file=a.zeroshot,
                    )
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
        print(f"tailgraph evaluate: {exc}", file=sys.stderr)
        return 2
    if a.json:
        write_json(a.json, result)
        print(f"metrics: {a.json}")
    return 0


def _run_vidvrd(a: argparse.Namespace) -> dict:
    """GT: tailgraph JSON with ``"protocol": "vidvrd"`` and ``"videos"`` (video id → relation
    instances); predictions: the official VidVRD results JSON."""
    from tailgraph.evaluation.vidvrd import evaluate_vidvrd, read_vidvrd_results
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
    preds = read_vidvrd_results(a.pred)
    try:
        result = evaluate_vidvrd(doc["videos"], preds, predicates=doc.get("predicates"))
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
