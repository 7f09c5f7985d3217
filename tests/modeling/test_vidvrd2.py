"""VidVRD-II's segment pipeline: tracklets, pair assignment, association, the model and its
training through the engine (checked with the VidVRD evaluator)."""

import numpy as np
import pytest
import torch

from tailgraph.data.tracklets import (
    active_instances,
    assign_pairs,
    pair_position,
    segment_tracklets,
)
from tailgraph.evaluation.vidvrd import viou
from tailgraph.modeling.segment_model import (
    VidVRD2Model,
    binary_focal_loss,
    greedy_association,
    overlap_viou,
)
from tailgraph.structures import SceneGraph, Tracklet, VideoSceneGraph, collate_segments


def _video(n=8):
    frames = []
    for f in range(n):
        boxes = [[10 + f, 10, 30 + f, 30], [50, 50, 70, 80]]
        frames.append(
            SceneGraph(
                f"v/{f}",
                100,
                100,
                np.array(boxes, dtype=np.float32),
                [1, 2],
                np.zeros((0, 3), dtype=np.int64),
                track_ids=[7, 9],
            )
        )
    return VideoSceneGraph("v", frames)


def test_active_instances_need_half_of_the_shorter_span():
    inst = [
        {"begin_fid": 0, "end_fid": 4},
        {"begin_fid": 6, "end_fid": 8},
        {"begin_fid": 7, "end_fid": 20},
    ]
    assert active_instances(inst, 0, 8) == inst[:2]  # the last overlaps 1 frame of min(8, 13) = 8


def test_gt_and_jittered_tracklets():
    v = _video()
    trs, tracks = segment_tracklets(v, 2, 6, "gt")
    assert [t.track_id for t in trs] == [7, 9] and all(t.begin == 2 and t.end == 6 for t in trs)
    assert trs[0].boxes[0].tolist() == [12, 10, 32, 30]
    jit, _ = segment_tracklets(v, 2, 6, "jittered", 0.05, np.random.default_rng(0))
    ov = viou(jit[0].boxes, (2, 6), tracks[7][1], (2, 6))
    assert 0.5 < ov < 1.0
    assert (jit[0].boxes[:, 2] >= jit[0].boxes[:, 0]).all()


def test_the_iou_tracker_links_bridges_gaps_and_separates_crossing_objects():
    from tailgraph.ops.tracks import link_detections

    a = [[10 + 3 * f, 10, 30 + 3 * f, 30] for f in range(10)]  # moves right
    b = [[60 - 3 * f, 22, 80 - 3 * f, 42] for f in range(10)]  # moves left: they pass
    frames = [np.array([a[f], b[f]], dtype=float) for f in range(10)]
    frames[4] = np.array([b[4]])  # a missed in frame 4: bridged (max_gap 2)
    frames[5] = np.array([b[5], a[5]])  # order of detections does not matter
    tracks = link_detections(frames, begin=3)
    assert len(tracks) == 2 and all(first == 3 and len(bx) == 10 for first, bx in tracks)
    by_start = {tuple(bx[0]): bx for _, bx in tracks}
    ta, tb = by_start[tuple(map(float, a[0]))], by_start[tuple(map(float, b[0]))]
    assert ta[4].tolist() == a[3]  # the gap holds the last box
    assert ta[9].tolist() == a[9] and tb[9].tolist() == b[9]  # identities kept as they pass
    # a longer gap ends the track; a new one starts; single-frame tracks are dropped
    frames = [np.array([a[0]]), np.array([a[1]])] + [np.zeros((0, 4))] * 3 + [np.array([a[5]])]
    frames += [np.array([a[6]]), np.array([[90, 90, 95, 95]])]
    assert [(f, len(bx)) for f, bx in link_detections(frames)] == [(0, 2), (5, 2)]


def test_the_optimal_assignment_keeps_identities_where_the_greedy_one_swaps():
    from tailgraph.ops.tracks import box_iou_np, link_detections

    a0, b0 = [10, 10, 20, 20], [16, 16, 24, 27]
    a1, b1 = [14, 8, 24, 18], [14, 12, 22, 23]
    iou = box_iou_np(np.array([a0, b0], float), np.array([a1, b1], float))
    # a's last box overlaps b's next box most (0.34), but a -> a and b -> b sum higher
    assert iou[0, 1] > iou[0, 0] > 0.3 and iou[1, 1] > 0.3 > iou[1, 0]
    frames = [np.array([a0, b0], float), np.array([a1, b1], float), np.array([a1, b1], float)]
    kept = sorted((tuple(bx[0]), tuple(bx[1])) for _, bx in link_detections(frames))
    assert kept == sorted(
        [(tuple(map(float, a0)), tuple(map(float, a1)))]
        + [(tuple(map(float, b0)), tuple(map(float, b1)))]
    )
    greedy = link_detections(frames, matching="greedy")
    # greedy gives a b's box; b's track, left with nothing above 0.3, is replaced by a new one
    assert (tuple(map(float, a0)), tuple(map(float, b1))) in [
        (tuple(bx[0]), tuple(bx[1])) for _, bx in greedy
    ]
    with pytest.raises(ValueError, match="matching"):
        link_detections(frames, matching="hungry")


def test_linking_by_class_never_joins_boxes_of_two_classes():
    from tailgraph.ops.tracks import link_detections

    # two boxes of different classes trade places: by IoU alone each takes the other's place
    frames = [np.array([[0, 0, 10, 10], [4, 0, 14, 10]], float)] * 2
    frames += [np.array([[4, 0, 14, 10], [0, 0, 10, 10]], float)] * 2
    labels = [np.array([1, 2])] * 2 + [np.array([1, 2])] * 2
    by_box = {tuple(bx[0]): bx for _, bx in link_detections(frames)}
    assert by_box[(0.0, 0.0, 10.0, 10.0)][-1].tolist() == [0, 0, 10, 10]  # kept its place
    by_class = {tuple(bx[0]): bx for _, bx in link_detections(frames, labels=labels)}
    assert by_class[(0.0, 0.0, 10.0, 10.0)][-1].tolist() == [4, 0, 14, 10]  # followed class 1
    assert by_class[(4.0, 0.0, 14.0, 10.0)][-1].tolist() == [0, 0, 10, 10]
    with pytest.raises(ValueError, match="labels"):
        link_detections(frames, labels=[np.array([1])] * 4)


def test_tracked_tracklets_come_from_detections_linked_by_the_tracker():
    v = _video(16)
    trs, tracks = segment_tracklets(v, 0, 16, "tracked", 0.02, np.random.default_rng(1))
    assert trs and all(t.track_id is None for t in trs)  # no annotated identity
    assert all((t.boxes[:, 2] >= t.boxes[:, 0]).all() for t in trs)
    for tid in (7, 9):  # each annotated track is recovered by some tracklet
        first, boxes = tracks[tid]
        best = max(viou(t.boxes, (t.begin, t.end), boxes, (first, first + len(boxes))) for t in trs)
        assert best > 0.5, (tid, best)
    again, _ = segment_tracklets(v, 0, 16, "tracked", 0.02, np.random.default_rng(1))
    assert [t.boxes.tolist() for t in again] == [t.boxes.tolist() for t in trs]


def test_assign_pairs_by_viou_thresholds():
    v = _video()
    _, tracks = segment_tracklets(v, 0, 8, "gt")
    exact_a = Tracklet(0, tracks[7][1].copy(), 7)
    exact_b = Tracklet(0, tracks[9][1].copy(), 9)
    shifted = tracks[9][1].copy()
    shifted[:, [0, 2]] += 4  # vIoU with track 9 between 0.5 and 0.9
    loose_b = Tracklet(0, shifted, 9)
    x = viou(shifted, (0, 8), tracks[9][1], (0, 8))
    assert 0.5 <= x < 0.9
    inst = [
        {"subject_tid": 7, "object_tid": 9, "predicate": "chase"},
        {"subject_tid": 7, "object_tid": 9, "predicate": "left"},
    ]
    labels, pairs, targets, positive = assign_pairs(
        [exact_a, exact_b, loose_b], tracks, inst, {"chase": 0, "left": 1, "above": 2}, {7: 3, 9: 5}
    )
    assert labels.tolist() == [3, 5, 5]
    got = {tuple(p): (t.tolist(), bool(q)) for p, t, q in zip(pairs.tolist(), targets, positive)}
    assert got[(0, 1)] == ([1.0, 1.0, 0.0], True)  # both predicates of the pair
    assert got[(1, 0)] == ([0.0, 0.0, 0.0], False)  # reversed direction: a negative
    assert (0, 2) not in got  # 0.5 <= vIoU < 0.9: ignored
    assert got[(2, 0)][1] is False and len(got) == 5


def test_pair_position_uses_first_and_last_boxes():
    a = Tracklet(2, np.array([[0, 0, 20, 10], [5, 0, 25, 10]], dtype=float))
    b = Tracklet(2, np.array([[30, 0, 40, 20], [30, 0, 40, 20]], dtype=float))
    f = pair_position([a, b], torch.tensor([[0, 1]]))
    assert f[0, 0].item() == pytest.approx((10 - 35) / 10) and f[0, 6].item() == pytest.approx(
        (15 - 35) / 10
    )


def _inst(trip, b, e, score, dx=0.0):
    box = [10 + dx, 10, 30 + dx, 30]
    return {
        "triplet": trip,
        "score": score,
        "duration": [b, e],
        "sub_traj": [box] * (e - b),
        "obj_traj": [[50, 50, 70, 70]] * (e - b),
    }


def test_greedy_association_joins_matching_instances_across_segments():
    t = ["dog", "chase", "cat"]
    seg0 = [_inst(t, 0, 8, 0.5), _inst(["dog", "left", "cat"], 0, 8, 0.4)]
    seg1 = [
        _inst(t, 4, 12, 0.25),
        _inst(t, 4, 12, 0.2, dx=40),
    ]  # the second is elsewhere: a new instance
    out = greedy_association([seg0, seg1], per_video=10)
    assert len(out) == 3
    joined = out[0]
    assert (
        joined["triplet"] == t
        and joined["duration"] == [0, 12]
        and joined["score"] == pytest.approx(0.75)
    )
    assert len(joined["sub_traj"]) == 12
    assert [r["score"] for r in out] == pytest.approx([0.75, 0.4, 0.2])
    mean = greedy_association([seg0, seg1], score="mean")
    assert [r["score"] for r in mean if r["duration"] == [0, 12]] == pytest.approx([0.375])
    assert len(greedy_association([seg0, seg1], per_video=2)) == 2
    assert overlap_viou([[0, 0, 9, 9]] * 2, (0, 2), [[0, 0, 9, 9]] * 4, (1, 5)) == pytest.approx(
        1.0
    )


def test_binary_focal_loss_by_hand():
    z = torch.tensor([[0.0, 2.0]])
    y = torch.tensor([[1.0, 0.0]])
    p = torch.sigmoid(z)
    expect = (0.5**2) * -np.log(0.5) + float(p[0, 1]) ** 2 * -np.log(1 - float(p[0, 1]))
    assert float(binary_focal_loss(z, y)) == pytest.approx(expect, rel=1e-5)


def test_model_predicts_foreground_columns_as_predicates_one_up():
    torch.manual_seed(0)
    names = ["__background__", "a", "b"]
    preds = ["__background__", "chase", "left"]
    m = VidVRD2Model(
        feat_dim=4,
        num_classes=3,
        num_predicates=3,
        hidden_dim=8,
        per_segment=5,
        class_names=names,
        predicate_names=preds,
    )
    v = _video()
    trs, _ = segment_tracklets(v, 0, 8)
    from tailgraph.structures import Segment

    pairs = torch.tensor([[0, 1], [1, 0]])
    seg = Segment(
        "v",
        0,
        8,
        trs,
        torch.randn(2, 4),
        torch.tensor([1, 2]),
        pairs,
        torch.zeros(2, 2),
        torch.zeros(2, dtype=torch.bool),
        pair_position(trs, pairs),
    )
    batch = collate_segments([seg])
    with torch.no_grad():
        m.net.head.fc.weight.zero_()
        m.net.head.fc.weight[1] = 5.0  # column 1 = predicate 2 = "left"
        out = m(batch)
    ((vid, begin, inst),) = m.segment_predictions(batch, out)
    assert vid == "v" and begin == 0 and len(inst) == 5
    assert all(r["triplet"][1] in ("chase", "left") and r["triplet"][0] in ("a", "b") for r in inst)
    assert inst[0]["score"] >= inst[-1]["score"]
    best = max(inst, key=lambda r: r["score"])
    assert best["triplet"][1] == "left"
    with pytest.raises(ValueError, match="feat_dim"):
        m(
            collate_segments(
                [
                    Segment(
                        "v",
                        0,
                        8,
                        trs,
                        torch.randn(2, 5),
                        seg.labels,
                        pairs,
                        seg.targets,
                        seg.positive,
                        seg.position,
                    )
                ]
            )
        )


@pytest.fixture(scope="module")
def vrd_dm(tmp_path_factory):
    from tests.helpers import tiny_vrd_tracklets

    root = tmp_path_factory.mktemp("vrd") / "synth-vrd"
    dm = tiny_vrd_tracklets(
        root,
        100,
        30,
        128,
        tracklets="jittered",
        jitter=0.01,
        synth_options={"head_tail_ratio": 10.0},
    )
    dm.setup("fit")
    return dm


def _fit(dm, epochs, method=None, head=None, seed=0):
    import lightning as L

    from tailgraph.engine.module import SGGModule

    L.seed_everything(seed, verbose=False)
    spec = {
        "context": {
            "class_path": "tailgraph.modeling.segment_model.VidVRD2Model",
            "init_args": {"feat_dim": dm.feature_dim, "hidden_dim": 64},
        },
        "features": None,
        "lr": 2e-3,
        "lr_schedule": "constant",
    }
    if method:
        spec["method"] = method
    if head:
        spec["head"] = head
    module = SGGModule(**spec)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    if epochs:
        trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    return module


def test_vidvrd2_learns_relation_detection_through_the_evaluator(vrd_dm):
    """Trained for a few epochs, VidVRD-II's RelDet recall and mAP (the project's VidVRD
    evaluator on associated video-level instances) rise far above the untrained model's."""
    untrained = _fit(vrd_dm, 0).last_metrics
    trained = _fit(vrd_dm, 20).last_metrics
    assert trained["RelDet_R@100"] > max(0.15, 3 * untrained["RelDet_R@100"]), (untrained, trained)
    assert trained["RelDet_mAP"] > 2 * untrained["RelDet_mAP"]
    assert trained["mR@100"] > untrained["mR@100"]


def test_dll_trains_through_the_engine_and_checkpoints_its_correlation(vrd_dm, tmp_path):
    from tailgraph.engine.module import SGGModule

    module = _fit(
        vrd_dm,
        2,
        method={"class_path": "tailgraph.methods.dll.DLL", "init_args": {"alpha_hold_epochs": 1}},
        head={"class_path": "tailgraph.methods.dll.DecoupledHead"},
    )
    assert module.last_metrics["num_videos"] > 0
    state = module.state_dict()
    assert (
        "method.correlation" in state
        and "method.last_step" in state
        and int(state["method.last_step"]) > 0
    )
    # the correlation moved away from its initial value (L_cm trains it)
    init = torch.eye(state["method.correlation"].shape[0]) * state["method.correlation"][0, 0]
    assert not torch.allclose(state["method.correlation"], init)
    path = tmp_path / "dll.ckpt"
    module.trainer.save_checkpoint(path)
    restored = SGGModule.load_from_checkpoint(path, weights_only=True)
    assert torch.equal(restored.method.correlation, module.method.correlation)


def test_predict_writes_associated_video_results_that_evaluate_to_the_test_metrics(
    vrd_dm, tmp_path, capsys
):
    import lightning as L

    from tailgraph.data.vidvrd import to_groundtruth
    from tailgraph.engine.callbacks import PredictionWriter
    from tailgraph.evaluation.vidvrd import evaluate_vidvrd, read_vidvrd_results

    module = _fit(vrd_dm, 2)
    path = tmp_path / "pred.json"
    trainer = L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[PredictionWriter(str(path))],
    )
    trainer.predict(module, datamodule=vrd_dm, return_predictions=False)
    results = read_vidvrd_results(str(path))
    assert len(results) == len(vrd_dm.splits["test"]) and all(
        len(r) <= 200 for r in results.values()
    )
    gt = {v: r for v, r in to_groundtruth(vrd_dm.splits["test"]).items() if v in results}
    vocab = vrd_dm.vocab
    metrics = evaluate_vidvrd(
        gt, results, predicates=[vocab.predicates[i] for i in vocab.foreground_predicates]
    )
    for key in ("RelDet_mAP", "RelDet_R@50", "RelDet_R@100", "mR@100", "RelTag_P@5"):
        assert metrics[key] == pytest.approx(module.last_metrics[key]), key


def test_dll_in_a_plain_training_loop_as_the_readme_shows(vrd_dm):
    from tailgraph.methods.base import TrainStats
    from tailgraph.methods.dll import DLL
    from tailgraph.modeling.builder import build_model
    from tailgraph.protocols import build_protocol

    torch.manual_seed(0)
    vocab = vrd_dm.vocab
    train_stats = TrainStats.from_graphs(vrd_dm.train_graphs(), vocab)
    model = build_model(
        vocab,
        context={
            "class_path": "tailgraph.modeling.segment_model.VidVRD2Model",
            "init_args": {"feat_dim": vrd_dm.feature_dim, "hidden_dim": 32},
        },
        head={"class_path": "tailgraph.methods.dll.DecoupledHead"},
        features=None,
    )
    method = DLL(alpha_hold_epochs=0)
    method.setup(model, vocab, train_stats, protocol=build_protocol("vidvrd", vocab))
    opt = torch.optim.Adam(list(model.parameters()) + list(method.parameters()), lr=1e-3)
    step, first, last = 0, None, None
    for epoch in range(2):
        method.on_train_epoch_start(model, epoch)
        for batch in vrd_dm.train_dataloader():
            losses = method.training_step(model, batch)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            method.on_after_optimizer_step(model, step)
            first = float(loss) if first is None else first
            last = float(loss)
    assert set(losses) == {
        "loss_obj",
        "loss_target",
        "loss_adversarial",
        "loss_correlation",
        "loss_transfer",
    }
    assert last < first and method.alpha() > method.alpha0


def test_tracklet_segments_are_cached_on_disk_and_rebuilt_when_stale(tmp_path):
    from tests.helpers import tiny_vrd_tracklets

    def dm(cache, pool=2):
        return tiny_vrd_tracklets(
            tmp_path / "vrd",
            6,
            2,
            64,
            feature_cache=str(cache),
            feature_extractor={
                "class_path": "tailgraph.modeling.tracklet_features.TrackletFeatureExtractor",
                "init_args": {"pool": pool},
            },
        )

    first = dm(tmp_path / "cache")
    first.setup("fit")
    files = sorted((tmp_path / "cache").glob("*.pt"))
    assert {f.name.split("-")[0] for f in files} == {"train", "val", "test"}
    second = dm(tmp_path / "cache")
    second.setup("fit")
    for a, b in zip(
        first.segments["train"] + first.segments["test"],
        second.segments["train"] + second.segments["test"],
    ):
        assert (a.video_id, a.begin, a.end) == (b.video_id, b.begin, b.end)
        for field in ("feats", "labels", "pairs", "targets", "positive", "position"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        assert all(
            np.array_equal(x.boxes, y.boxes) and x.begin == y.begin
            for x, y in zip(a.tracklets, b.tracklets)
        )
    # other extractor settings: another file; a corrupt file is rebuilt, not read
    dm(tmp_path / "cache", pool=1).setup("fit")
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 6
    files[0].write_bytes(b"not a checkpoint")
    third = dm(tmp_path / "cache")
    third.setup("fit")
    assert torch.equal(
        torch.cat([s.feats for s in third.segments["test"]]),
        torch.cat([s.feats for s in first.segments["test"]]),
    )
    # one damaged byte of a feature value (torch.load checks no CRC of tensor data): the file's
    # CRC-32 header refuses it and the segments are rebuilt, not read with another value
    assert files[0].name.startswith("test")
    raw = bytearray(files[0].read_bytes())
    at = raw.index(first.segments["test"][0].feats.numpy().tobytes()[:64])
    raw[at + 3] ^= 0x20
    files[0].write_bytes(bytes(raw))
    fourth = dm(tmp_path / "cache")
    fourth.setup("fit")
    assert torch.equal(
        torch.cat([s.feats for s in fourth.segments["test"]]),
        torch.cat([s.feats for s in first.segments["test"]]),
    )


def test_user_tracklets_in_vidvrd_trajectory_layout(tmp_path):
    import json

    from tailgraph.data.tracklets import read_tracklet_file
    from tailgraph.errors import DataError

    v = _video()
    frames = []
    for f, fr in enumerate(v.frames):
        boxes = []
        for tid, b in zip(fr.track_ids.tolist(), fr.boxes.tolist()):
            if tid == 9 and f == 3:
                continue  # a skipped frame: the gap holds the last box
            bbox = dict(zip(("xmin", "ymin", "xmax", "ymax"), b))
            boxes.append({"tid": tid, "bbox": bbox})
        frames.append(boxes)
    path = tmp_path / "tracklets.json"
    path.write_text(json.dumps({"v": {"trajectories": frames}}))
    user = read_tracklet_file(str(path))
    mine, tracks = segment_tracklets(v, 2, 6, str(path), user_tracks=user["v"])
    gt, _ = segment_tracklets(v, 2, 6, "gt")
    assert [(t.begin, t.boxes.tolist()) for t in mine] == [(t.begin, t.boxes.tolist()) for t in gt]
    assert set(tracks) == {7, 9}  # labels still come from the annotation by vIoU
    bad = [
        ([[{"tid": 1, "bbox": {"xmin": 5, "ymin": 0, "xmax": 1, "ymax": 3}}]], "not finite and"),
        ([[{"tid": 1, "bbox": {"xmin": 0, "ymin": 0, "xmax": 1}}]], "xmin, ymin, xmax, ymax"),
        ([[{"tid": True, "bbox": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1}}]], "tid"),
        ([[{"tid": 1, "bbox": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1}}] * 2], "twice"),
        ("x", "trajectories"),
    ]
    for trajectories, text in bad:
        path.write_text(json.dumps({"v": {"trajectories": trajectories}}))
        with pytest.raises(DataError, match=text) as err:
            read_tracklet_file(str(path))
        assert str(path) in str(err.value)


def test_association_joins_a_later_segments_instance_that_starts_earlier():
    """With tracked tracklets a later segment's instance can begin before the video-level one
    (its tracker linked the track sooner): the joined trajectory covers both spans, every frame
    its own box (the old merge indexed rows from the wrong end)."""
    t = ["dog", "chase", "cat"]
    first = _inst(t, 20, 30, 0.5)
    later = _inst(t, 15, 45, 0.25)
    later["sub_traj"] = [[float(f), 0.0, f + 9.0, 9.0] for f in range(15, 45)]
    first["sub_traj"] = [[float(f), 0.0, f + 9.0, 9.0] for f in range(20, 30)]
    (out,) = greedy_association([[first], [later]], viou_threshold=0.3)
    assert out["duration"] == [15, 45] and len(out["sub_traj"]) == 30
    assert [box[0] for box in out["sub_traj"]] == [float(f) for f in range(15, 45)]
