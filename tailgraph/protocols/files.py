"""Evaluation from files — what ``tailgraph evaluate`` runs — for every protocol, without
PyTorch: ground truth and predictions are read as numpy arrays (interchange JSON, the binary
format) and scored by the numpy evaluators of :mod:`tailgraph.evaluation`.

Each protocol's :class:`~tailgraph.protocols.base.Protocol` class names its file evaluation
here (``Protocol.files``); the command line reaches it through
:attr:`tailgraph.protocols.DataKind.files` and so never imports the models' stack (a fresh
``tailgraph evaluate`` pays for numpy and h5py, not for torch). Only a data set folder given
as ground truth goes through the data readers, which build tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError
from tailgraph.vocab import Vocabulary

__all__ = [
    "EvalOptions",
    "load_ground_truth",
    "matched_chunks",
    "FileEvaluation",
    "VGFiles",
    "OIFiles",
    "AGFiles",
    "VidVRDFiles",
    "AG_CONSTRAINTS",
]

# Action Genome's three constraints, in the order results are reported
AG_CONSTRAINTS = ("with", "semi", "no")


@dataclass(frozen=True)
class EvalOptions:
    """The options of an evaluation from files (``tailgraph evaluate``).

    Attributes:
        mode: ``predcls`` | ``sgcls`` | ``sgdet``.
        ks: the K values.
        zeroshot: ``[subject class, object class, predicate]`` triplets of zero-shot recall
            (vg), or ``None``.
        semi_threshold: the semi constraint's threshold (ag).
        attention_softmax: softmax the attention columns first (ag, STTran's outputs).
        ignore: predicates left out of mAP* (oi).
        split: the split of a data set folder given as ground truth.
    """

    mode: str = "predcls"
    ks: tuple[int, ...] = (20, 50, 100)
    zeroshot: list | None = None
    semi_threshold: float = 0.9
    attention_softmax: bool = False
    ignore: tuple[str, ...] = ("under",)
    split: str = "test"


def load_ground_truth(
    path: str | Path,
    protocol: str,
    reader: Callable[..., tuple[list[Any], Vocabulary]] | None = None,
    split: str = "test",
) -> tuple[list[Any], Vocabulary]:
    """Ground-truth graphs (frames, for video data sets) and vocabulary of an evaluation.

    Args:
        path: tailgraph's ground-truth file (interchange JSON, or ``.h5`` / ``.npz``) or a data
            set folder (read with ``reader``).
        protocol: the protocol the file must be written for.
        reader: the data kind's reader, for a folder.
        split: the split of a folder.
    """
    from tailgraph.io.binformat import is_binary, read_ground_truth_binary
    from tailgraph.io.interchange import read_ground_truth

    path = Path(path)
    if path.is_dir():
        if reader is None:
            raise DataError(
                "GT is a folder: say which data set format it is with --format",
                file=str(path),
                field="--format",
            )
        graphs, vocab = reader(str(path), split, layout_only=True)
        from tailgraph.structures import VideoSceneGraph  # a folder: the readers need torch

        if graphs and isinstance(graphs[0], VideoSceneGraph):  # frame-level evaluation (AG)
            graphs = [f for v in graphs for f in v.frames]
        return graphs, vocab
    if is_binary(path):
        graphs, meta = read_ground_truth_binary(path)
        preds_ = meta["predicates"]
        classes = meta["object_classes"]
        vocab = Vocabulary(
            classes,
            preds_,
            predicate_background=bool(preds_) and preds_[0] == "__background__",
            has_background=bool(classes) and classes[0] == "__background__",
        )
        written_for = meta.get("protocol")
    else:
        graphs, vocab, written_for = read_ground_truth(path, arrays=True)
    if written_for != protocol:
        raise DataError(
            f"ground truth is for protocol {written_for!r}, not {protocol!r}",
            file=str(path),
            field="protocol",
        )
    return graphs, vocab


def matched_chunks(
    pred_path: str, graphs: list[Any], vocab: Vocabulary, check_scores: bool
) -> Iterator[tuple[list[int], list[Any], list[Any]]]:
    """Chunks of ``(gt indices, gts, predictions)`` from a binary prediction file, every
    prediction matched to its GT image; at the end, a GT image never predicted is an error."""
    from tailgraph.io.binformat import BinaryReader
    from tailgraph.progress import track

    def image_id(g: Any) -> Any:
        return g["image_id"] if isinstance(g, dict) else g.image_id

    index = {image_id(g): i for i, g in enumerate(graphs)}
    seen = [False] * len(graphs)
    with BinaryReader(
        pred_path,
        kind="predictions",
        num_classes=vocab.num_classes,
        num_predicates=vocab.num_predicates,
        check_scores=check_scores,
    ) as r:
        for chunk in track(r.chunks(64), "evaluate", total=len(graphs), unit="img", weight=len):
            idx = []
            for pred in chunk:
                gi = index.get(pred["image_id"])
                if gi is None:
                    raise DataError(
                        "prediction for an image that is not in the ground truth",
                        file=pred_path,
                        sample=pred["image_id"],
                        field="image_id",
                    )
                seen[gi] = True
                idx.append(gi)
            yield idx, [graphs[i] for i in idx], chunk
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        raise DataError(
            f"no prediction for this ground-truth image ({len(missing)} missing)",
            file=pred_path,
            sample=image_id(graphs[missing[0]]),
            field="image_id",
        )


class FileEvaluation:
    """One protocol's evaluation from files (the ``tailgraph evaluate`` half of a protocol)."""

    name = ""

    @classmethod
    def check_options(cls, options: EvalOptions) -> None:
        """Refuse options out of range for this protocol (a :class:`DataError`)."""
        return None

    @classmethod
    def evaluate_paths(
        cls,
        gt: str,
        pred: str,
        options: EvalOptions,
        reader: Callable[..., tuple[list[Any], Vocabulary]] | None = None,
    ) -> dict[str, Any]:
        """Metrics of the prediction file ``pred`` against the ground truth ``gt`` (a file,
        or a data set folder read with ``reader``) — ``tailgraph evaluate``."""
        from tailgraph.io.binformat import is_binary
        from tailgraph.io.interchange import read_predictions

        graphs, vocab = load_ground_truth(gt, cls.name, reader, options.split)
        if is_binary(pred):
            try:
                return cls.evaluate_binary(graphs, vocab, pred, options)
            except DataError as exc:
                raise exc.with_context(file=pred) from None
        preds = read_predictions(
            pred, num_classes=vocab.num_classes, num_predicates=vocab.num_predicates
        )
        return cls.evaluate_predictions(graphs, vocab, preds, options)

    @classmethod
    def evaluate_predictions(
        cls, graphs: list[Any], vocab: Vocabulary, preds: list[Any], options: EvalOptions
    ) -> dict[str, Any]:
        """Metrics of in-memory predictions against ground-truth graphs."""
        raise NotImplementedError(f"the {cls.name} protocol has no file evaluation")

    @classmethod
    def evaluate_binary(
        cls, graphs: list[Any], vocab: Vocabulary, pred: str, options: EvalOptions
    ) -> dict[str, Any]:
        """Metrics of a binary prediction file, read chunk by chunk (:func:`matched_chunks`)."""
        raise NotImplementedError(f"the {cls.name} protocol reads no binary predictions")

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        """The metrics as the lines ``tailgraph evaluate`` prints (percent)."""
        return ""


class VGFiles(FileEvaluation):
    """Visual Genome: R / mR / ngR / zR / A@K."""

    name = "vg"

    @classmethod
    def evaluate_predictions(cls, graphs, vocab, preds, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.vg import evaluate_vg

        return evaluate_vg(
            graphs,
            preds,
            mode=options.mode,
            ks=options.ks,
            zeroshot_triplets=options.zeroshot,
            num_predicates=vocab.num_predicates,
        )

    @classmethod
    def evaluate_binary(cls, graphs, vocab, pred, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.vg import VGEvaluator, validated_item

        ev = VGEvaluator(
            options.mode, options.ks, options.zeroshot, num_predicates=vocab.num_predicates
        )
        ncol = vocab.num_predicates
        # the evaluator checks NaN / inf itself, in the same pass as its ranking
        for idx, gts, chunk in matched_chunks(pred, graphs, vocab, check_scores=False):
            items = []
            for g, q in zip(gts, chunk):
                item, ncol = validated_item(g, q, options.mode, ncol)
                items.append(item)
            ev.update_items(items, order=idx)
        return ev.compute()

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        return _vg_summary(result, options.ks, options.mode)


class OIFiles(VGFiles):
    """Open Images VRD: mAP / mAP* / mAP_FG over every ordered pair of annotated boxes."""

    name = "oi"

    @classmethod
    def evaluate_predictions(cls, graphs, vocab, preds, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.openimages import evaluate_oi

        return evaluate_oi(
            graphs,
            preds,
            vocab.predicates,
            ignore=options.ignore,
            background=vocab.predicate_background,
        )

    @classmethod
    def evaluate_binary(cls, graphs, vocab, pred, options: EvalOptions) -> dict[str, Any]:
        import numpy as np

        from tailgraph.evaluation.openimages import ap_metrics, collect_pairs

        nr = vocab.num_predicates
        blocks = []
        missed = np.zeros(nr, dtype=np.int64)
        for idx, gts, chunk in matched_chunks(pred, graphs, vocab, check_scores=True):
            for gi, g, q in zip(idx, gts, chunk):
                sc, lab, mi = collect_pairs([g], [q], nr, vocab.predicate_background)
                blocks.append((gi, sc, lab))
                missed += mi
        blocks.sort(key=lambda b: b[0])  # the ground truth's order, as the JSON path
        scores = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros((0, nr))
        labels = np.concatenate([b[2] for b in blocks]) if blocks else np.zeros((0, nr), dtype=bool)
        return ap_metrics(
            scores, labels, missed, vocab.predicates, options.ignore, vocab.predicate_background
        )

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        return _oi_summary(result)


class AGFiles(FileEvaluation):
    """Action Genome: R@K / mR@K per constraint (with / semi / no)."""

    name = "ag"

    @classmethod
    def check_options(cls, options: EvalOptions) -> None:
        if not (0.0 <= options.semi_threshold <= 1.0):
            raise DataError(
                f"must be within [0, 1], got {options.semi_threshold}", field="--semi-threshold"
            )

    @classmethod
    def evaluate_predictions(cls, graphs, vocab, preds, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.ag import evaluate_ag

        return evaluate_ag(
            graphs,
            preds,
            mode=options.mode,
            ks=options.ks,
            semi_threshold=options.semi_threshold,
            attention_softmax=options.attention_softmax,
        )

    @classmethod
    def evaluate_binary(cls, graphs, vocab, pred, options: EvalOptions) -> dict[str, Any]:
        from tailgraph.evaluation.ag import AGEvaluator

        evs = {
            c: AGEvaluator(
                c,
                options.mode,
                options.ks,
                options.semi_threshold,
                attention_softmax=options.attention_softmax,
            )
            for c in AG_CONSTRAINTS
        }
        for idx, gts, chunk in matched_chunks(pred, graphs, vocab, check_scores=True):
            for ev in evs.values():
                for gi, g, q in zip(idx, gts, chunk):
                    ev.update_frame(g, q, order=gi)
        return {c: ev.compute() for c, ev in evs.items()}

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        ks, mode = options.ks, options.mode
        frames = next(iter(result.values()))["num_frames"]
        lines = [f"ag {mode}: {frames} frames evaluated (percent)"]
        lines.append(
            f"{'constraint':<12}"
            + "".join(f"{'R@' + str(k):>9}" for k in ks)
            + "".join(f"{'mR@' + str(k):>9}" for k in ks)
        )
        for c, m in result.items():
            lines.append(
                f"{c:<12}"
                + "".join(f"{100 * m[f'R@{k}']:>9.2f}" for k in ks)
                + "".join(f"{100 * m[f'mR@{k}']:>9.2f}" for k in ks)
            )
        return "\n".join(lines)


class VidVRDFiles(FileEvaluation):
    """ImageNet-VidVRD: RelDet (mAP, R@K, mR@K) and RelTag (P@K) over relation instances."""

    name = "vidvrd"

    @classmethod
    def evaluate_paths(cls, gt, pred, options: EvalOptions, reader=None) -> dict[str, Any]:
        """GT: tailgraph JSON with ``"protocol": "vidvrd"`` and ``"videos"`` (video id →
        relation instances), a ``vidvrd_ground_truth`` binary file or a VidVRD folder;
        predictions: the official VidVRD results JSON or a ``vidvrd_results`` binary file
        (read video by video)."""
        from tailgraph.evaluation.vidvrd import (
            aggregate_video_stats,
            check_relation_instances,
            evaluate_vidvrd,
            read_vidvrd_results,
            video_stats,
        )
        from tailgraph.io.binformat import BinaryReader, is_binary, read_vidvrd_binary
        from tailgraph.io.interchange import FORMAT, read_json

        if Path(gt).is_dir():
            from tailgraph.data.vidvrd import load_vidvrd, to_groundtruth  # a folder: torch

            videos, vocab = (reader or load_vidvrd)(gt, options.split)
            doc = {
                "format": FORMAT,
                "protocol": cls.name,
                "videos": to_groundtruth(videos),
                "predicates": vocab.predicates[1:],
            }
        elif is_binary(gt):
            gt_videos, meta = read_vidvrd_binary(gt, "vidvrd_ground_truth")
            doc = {
                "format": FORMAT,
                "protocol": cls.name,
                "videos": gt_videos,
                "predicates": meta.get("predicates"),
            }
        else:
            doc = read_json(gt)
        if (
            not isinstance(doc, dict)
            or doc.get("format") != FORMAT
            or doc.get("protocol") != cls.name
        ):
            raise DataError(
                f'expected a {FORMAT} ground-truth file with "protocol": "{cls.name}"',
                file=gt,
                field="protocol",
            )
        if not isinstance(doc.get("videos"), dict):
            raise DataError(
                "expected 'videos' (video id -> relation instances)", file=gt, field="videos"
            )
        videos_gt = doc["videos"]
        try:  # the ground truth, validated before any prediction is read
            for vid, g in videos_gt.items():
                check_relation_instances(g, vid, scored=False)
        except DataError as exc:
            raise exc.with_context(file=str(gt)) from None
        try:
            if is_binary(pred):
                order = {vid: i for i, vid in enumerate(videos_gt)}
                stats: dict[int, object] = {}
                with BinaryReader(pred, kind="vidvrd_results") as r:
                    for vid, rels in r.videos():
                        i = order.get(vid, order.get(str(vid)))
                        if i is None:
                            continue  # as the reference: predictions for other videos are ignored
                        g = videos_gt[vid] if vid in videos_gt else videos_gt[str(vid)]
                        if g:
                            stats[i] = video_stats(g, rels, vid)
                for vid, g in videos_gt.items():  # GT videos without predictions: an empty list
                    if g and order[vid] not in stats:
                        stats[order[vid]] = video_stats(g, [], vid)
                return aggregate_video_stats(
                    [stats[i] for i in sorted(stats)],  # type: ignore[misc]
                    predicates=doc.get("predicates"),
                )
            preds = read_vidvrd_results(pred)
            return evaluate_vidvrd(videos_gt, preds, predicates=doc.get("predicates"))
        except DataError as exc:
            raise exc.with_context(file=pred) from None

    @classmethod
    def summary(cls, result: dict[str, Any], options: EvalOptions) -> str:
        lines = [f"vidvrd: {result['num_videos']} videos evaluated (percent)"]
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
            lines.append(f"{key:<14}{100 * result[key]:>9.2f}")
        return "\n".join(lines)


def _vg_summary(metrics: dict, ks: Sequence[int], mode: str) -> str:
    keys = [k for k in ("R", "mR", "ngR", "ng-mR", "zR", "ng-zR", "A") if f"{k}@{ks[0]}" in metrics]
    lines = [f"vg {mode}: {metrics['num_images']} images evaluated (percent)"]
    lines.append(f"{'metric':<8}" + "".join(f"{'@' + str(k):>9}" for k in ks))
    for key in keys:
        lines.append(f"{key:<8}" + "".join(f"{100 * metrics[f'{key}@{k}']:>9.2f}" for k in ks))
    return "\n".join(lines)


def _oi_summary(result: dict) -> str:
    lines = [
        f"oi: {result['num_pairs']} candidate pairs, {result['num_positive_pairs']} "
        "positive (percent)"
    ]
    for key in ("mAP", "mAP*", "mAP_FG", "mAP*_FG"):
        lines.append(f"{key:<10}{100 * result[key]:>9.2f}")
    return "\n".join(lines)
