"""``tailgraph evaluate``: score a prediction file against ground truth.

    tailgraph evaluate --protocol vg --mode predcls --gt GT --pred PRED.json [--format vg]
                       [--split test] [--zeroshot TRIPLETS.json] [--json OUT.json] [-k 20 50 100]

GT is tailgraph's ground-truth file (``tailgraph.io.interchange`` JSON, or the binary format of
``tailgraph.io.binformat``: ``.h5`` / ``.npz``) or a data set folder read with ``--format``; PRED
is tailgraph's prediction file, JSON or binary by extension (binary files are read in chunks
of images, so memory stays bounded by a chunk); TRIPLETS a JSON list of
``[subject_class, object_class, predicate]``. The output JSON has flat keys with fractions in
[0, 1] (``R@K``, ``mR@K``, ``ngR@K``, ``ng-mR@K``, ``zR@K``, ``ng-zR@K``, ``A@K`` and
``per_predicate_R@K`` lists for the vg protocol).
"""

from __future__ import annotations

import argparse
import sys

from tailgraph.errors import DataError
from tailgraph.io.args import float_in, int_in
from tailgraph.protocols import DATA_KINDS, EvalOptions, data_kind

__all__ = ["main"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="tailgraph evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--protocol", required=True, choices=list(DATA_KINDS))
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
    defaults = "; ".join(
        f"{k.name}: {' '.join(map(str, k.default_ks))}" for k in DATA_KINDS.values()
    )
    p.add_argument(
        "-k", type=int_in(1, 10000), nargs="+", default=None, help=f"K values, 1-10000 ({defaults})"
    )
    p.add_argument(
        "--semi-threshold",
        type=float_in(0.0, 1.0),
        default=0.9,
        help="ag: threshold of the semi constraint",
    )
    p.add_argument(
        "--attention-softmax",
        action="store_true",
        help="ag: softmax the attention columns (STTran)",
    )
    p.add_argument(
        "--ignore",
        nargs="*",
        default=None,
        help="oi: predicates left out of mAP* (default: under); names must be predicates",
    )
    a = p.parse_args(argv)
    from tailgraph.io.interchange import write_json

    kind = DATA_KINDS[a.protocol]
    try:
        # an option of another protocol would be silently without effect
        for given, option, protocol in (
            (a.ignore is not None, "--ignore", "oi"),
            (a.attention_softmax, "--attention-softmax", "ag"),
        ):
            if given and a.protocol != protocol:
                raise DataError(
                    f"applies to --protocol {protocol} only, not {a.protocol}", field=option
                )
        from tailgraph.evaluation.vg import _check_ks

        ks = tuple(_check_ks(a.k or kind.default_ks))
        if a.json:
            from tailgraph.io.outputs import claim_file

            claim_file(a.json, a.overwrite, field="--json")
        options = EvalOptions(
            mode=a.mode,
            ks=ks,
            zeroshot=_zeroshot(a),
            semi_threshold=a.semi_threshold,
            attention_softmax=a.attention_softmax,
            ignore=tuple(a.ignore if a.ignore is not None else ["under"]),
            split=a.split,
        )
        kind.files.check_options(options)
        reader = data_kind(a.format, field="--format").reader if a.format else None
        result = kind.files.evaluate_paths(a.gt, a.pred, options, reader=reader)
        known = result.get("per_predicate_AP") if isinstance(result, dict) else None
        if a.ignore and known is not None:
            unknown = [n for n in a.ignore if n not in known]
            if unknown:
                raise DataError(
                    f"unknown predicate {unknown[0]!r}; the predicates are {sorted(known)}",
                    field="--ignore",
                )
        text = kind.files.summary(result, options)
        if text:
            print(text)
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
    from tailgraph.io.interchange import read_json

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
