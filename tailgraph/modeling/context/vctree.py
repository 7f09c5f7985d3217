"""VCTree context (Tang et al., CVPR 2019): a dynamic tree over the objects of an image.

Per image: a pairwise score matrix → maximum spanning tree (Prim, rooted at the object with
the largest total score) → binary tree (left child = first child, right child = next
sibling) → bidirectional TreeLSTM (bottom-up, then top-down). The score matrix is trained by
an auxiliary binary loss on "is this pair related" (as Scene-Graph-Benchmark does), returned
in ``ContextOutput.pair_score_logits``; the paper's REINFORCE refinement of the tree
is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tailgraph.modeling.context.common import FrequencyBias, ObjectInput, PairFromContext
from tailgraph.modeling.geometry import pair_geometry
from tailgraph.modeling.types import ContextModel, ContextOutput, RelationInputs

__all__ = ["VCTreeContext", "maximum_spanning_tree", "BinaryTree", "to_binary_tree"]


def maximum_spanning_tree(scores: np.ndarray) -> tuple[int, list[int], list[list[int]]]:
    """Prim's algorithm on a symmetric score matrix.

    Args:
        scores: ``[n, n]`` pair scores (symmetrised here; the diagonal is ignored).
    Returns:
        ``(root, parent, children)``: the root is the node with the largest row sum; ``parent[i]``
        is -1 for the root; ``children[i]`` lists i's children in the order they joined the tree.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    s = (s + s.T) / 2
    np.fill_diagonal(s, -np.inf)
    parent = [-1] * n
    children: list[list[int]] = [[] for _ in range(n)]
    if n == 0:
        return -1, parent, children
    row = np.where(np.isfinite(s), s, 0).sum(1)
    root = int(np.argmax(row))
    in_tree = np.zeros(n, dtype=bool)
    in_tree[root] = True
    best = s[root].copy()
    best_from = np.full(n, root)
    for _ in range(n - 1):
        cand = np.where(in_tree, -np.inf, best)
        j = int(np.argmax(cand))
        i = int(best_from[j])
        parent[j] = i
        children[i].append(j)
        in_tree[j] = True
        better = s[j] > best
        best = np.where(better, s[j], best)
        best_from = np.where(better, j, best_from)
    return root, parent, children


@dataclass
class BinaryTree:
    """Left-child right-sibling form of a rooted tree (``-1`` = none)."""

    root: int
    left: list[int]
    right: list[int]
    parent: list[int]  # parent in the binary tree

    def postorder(self) -> list[int]:
        out, stack = [], [(self.root, False)] if self.root >= 0 else []
        while stack:
            node, done = stack.pop()
            if done:
                out.append(node)
                continue
            stack.append((node, True))
            for c in (self.right[node], self.left[node]):
                if c >= 0:
                    stack.append((c, False))
        return out


def to_binary_tree(root: int, children: list[list[int]]) -> BinaryTree:
    n = len(children)
    left, right, parent = [-1] * n, [-1] * n, [-1] * n
    for i, ch in enumerate(children):
        if ch:
            left[i] = ch[0]
            parent[ch[0]] = i
            for a, b in zip(ch, ch[1:]):
                right[a] = b
                parent[b] = a
    return BinaryTree(root, left, right, parent)


class _BinaryTreeLSTMCell(nn.Module):
    """Tai et al.'s binary TreeLSTM cell (two children with separate forget gates)."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.x = nn.Linear(in_dim, 5 * hidden)
        self.h = nn.Linear(2 * hidden, 5 * hidden, bias=False)
        self.hidden = hidden

    def forward(self, x, hl, cl, hr, cr):
        i, o, u, fl, fr = (self.x(x) + self.h(torch.cat([hl, hr], -1))).chunk(5, -1)
        c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(fl) * cl + torch.sigmoid(fr) * cr
        return torch.sigmoid(o) * torch.tanh(c), c


@dataclass
class Forest:
    """The binary trees of a batch in one index space, ordered for level-batched passes.

    ``left`` / ``right`` / ``parent`` are global node indices (``-1`` = none);
    ``up_levels[k]`` are the nodes of height ``k`` (leaves first: every child of a node has a
    smaller height), ``down_levels[d]`` the nodes of depth ``d`` (roots first).
    """

    left: torch.Tensor
    right: torch.Tensor
    parent: torch.Tensor
    up_levels: list[torch.Tensor]
    down_levels: list[torch.Tensor]


def build_forest(
    trees: Sequence[BinaryTree], members: Sequence[torch.Tensor], num_nodes: int
) -> Forest:
    """Merge per-image trees (local indices) into a :class:`Forest` of ``num_nodes`` nodes
    (``members[i]``: the global indices of image ``i``'s nodes)."""
    left = np.full(num_nodes, -1, dtype=np.int64)
    right, parent = left.copy(), left.copy()
    height, depth = np.zeros(num_nodes, dtype=np.int64), np.zeros(num_nodes, dtype=np.int64)
    for tree, idx in zip(trees, members):
        if tree.root < 0:
            continue
        g = idx.cpu().numpy()
        order = tree.postorder()
        for node in order:  # children before parents
            lt, r = tree.left[node], tree.right[node]
            left[g[node]] = g[lt] if lt >= 0 else -1
            right[g[node]] = g[r] if r >= 0 else -1
            height[g[node]] = 1 + max(
                height[g[lt]] if lt >= 0 else -1, height[g[r]] if r >= 0 else -1
            )
        for node in reversed(order):  # parents before children
            p = tree.parent[node]
            parent[g[node]] = g[p] if p >= 0 else -1
            depth[g[node]] = depth[g[p]] + 1 if p >= 0 else 0
    used = np.zeros(num_nodes, dtype=bool)
    for tree, idx in zip(trees, members):
        if tree.root >= 0:
            used[idx.cpu().numpy()] = True

    def levels(key: np.ndarray) -> list[torch.Tensor]:
        nodes = np.flatnonzero(used)
        if nodes.size == 0:
            return []
        order = nodes[np.argsort(key[nodes], kind="stable")]
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        return [torch.from_numpy(part) for part in np.split(order, cuts)]

    return Forest(
        torch.from_numpy(left),
        torch.from_numpy(right),
        torch.from_numpy(parent),
        levels(height),
        levels(depth),
    )


@torch.compiler.disable  # a Python / NumPy tree search: eager under model.compile
def _image_forest(
    scores: torch.Tensor, obj_to_img: torch.Tensor, num_images: int
) -> tuple[Forest, list[BinaryTree]]:
    """The batch's forest and its per-image binary trees: per image the maximum spanning
    tree of the object-pair ``scores`` ``[N, N]`` among its objects."""
    trees: list[BinaryTree] = []
    members = [torch.nonzero(obj_to_img == i).flatten() for i in range(num_images)]
    dense = scores.float().cpu().numpy()
    for idx in members:
        if idx.numel() == 0:
            trees.append(BinaryTree(-1, [], [], []))
            continue
        local = idx.cpu().numpy()
        root, _, children = maximum_spanning_tree(dense[np.ix_(local, local)])
        trees.append(to_binary_tree(root, children))
    return build_forest(trees, members, scores.shape[0]), trees


class _BiTreeLSTM(nn.Module):
    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.up = _BinaryTreeLSTMCell(in_dim, hidden)
        self.down = _BinaryTreeLSTMCell(in_dim, hidden)
        self.hidden = hidden

    # the loops over the levels would be unrolled into a graph per forest depth, recompiled
    # whenever a batch's trees are deeper or shallower: eager under model.compile
    @torch.compiler.disable
    def forward_forest(self, x: torch.Tensor, forest: Forest) -> torch.Tensor:
        """Both passes over every tree of the batch at once, one step per tree level: ``[N, 2H]``
        (rows of nodes outside every tree are 0). Equal to :meth:`forward` per tree."""
        n, dev = x.shape[0], x.device
        # row n is the zero state of a missing child / parent
        h_up = x.new_zeros((n + 1, self.hidden))
        c_up = x.new_zeros((n + 1, self.hidden))
        left = torch.where(forest.left >= 0, forest.left, n).to(dev)
        right = torch.where(forest.right >= 0, forest.right, n).to(dev)
        parent = torch.where(forest.parent >= 0, forest.parent, n).to(dev)
        for nodes in forest.up_levels:
            nodes = nodes.to(dev)
            lt, r = left[nodes], right[nodes]
            h, c = self.up(x[nodes], h_up[lt], c_up[lt], h_up[r], c_up[r])
            h_up = h_up.index_copy(0, nodes, h)
            c_up = c_up.index_copy(0, nodes, c)
        h_dn = x.new_zeros((n + 1, self.hidden))
        c_dn = x.new_zeros((n + 1, self.hidden))
        for nodes in forest.down_levels:
            nodes = nodes.to(dev)
            p = parent[nodes]
            z = x.new_zeros((nodes.shape[0], self.hidden))
            h, c = self.down(x[nodes], h_dn[p], c_dn[p], z, z)
            h_dn = h_dn.index_copy(0, nodes, h)
            c_dn = c_dn.index_copy(0, nodes, c)
        return torch.cat([h_up[:n], h_dn[:n]], dim=1)

    def forward(self, x: torch.Tensor, tree: BinaryTree) -> torch.Tensor:
        n = x.shape[0]
        z = x.new_zeros(self.hidden)
        h_up, c_up = [z] * n, [z] * n
        for node in tree.postorder():
            lt, r = tree.left[node], tree.right[node]
            h_up[node], c_up[node] = self.up(
                x[node],
                h_up[lt] if lt >= 0 else z,
                c_up[lt] if lt >= 0 else z,
                h_up[r] if r >= 0 else z,
                c_up[r] if r >= 0 else z,
            )
        h_dn, c_dn = [z] * n, [z] * n
        for node in reversed(tree.postorder()):  # parents before children
            p = tree.parent[node]
            h_dn[node], c_dn[node] = self.down(
                x[node], h_dn[p] if p >= 0 else z, c_dn[p] if p >= 0 else z, z, z
            )
        return torch.cat([torch.stack(h_up), torch.stack(h_dn)], dim=1)


class VCTreeContext(ContextModel):
    """VCTree context model.

    Args:
        class_names: object class names.
        num_predicates: predicate outputs ``R`` (frequency bias).
        obj_feat_dim, union_feat_dim: visual feature sizes (0 = none).
        hidden_dim: TreeLSTM width per direction is ``hidden_dim // 2``; pair features have
            ``hidden_dim`` values.
        use_freq_bias, pair_counts: frequency bias and its initial counts.

    Shapes:
        ``forward(RelationInputs) -> ContextOutput(pair_feats [P, hidden_dim], obj_logits [N, C],
        freq_logits [P, R] or None, pair_score_logits [P], extras={"trees": [BinaryTree]})``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        num_predicates: int,
        obj_feat_dim: int = 0,
        union_feat_dim: int = 0,
        hidden_dim: int = 256,
        use_freq_bias: bool = True,
        pair_counts: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        c = len(class_names)
        self.inputs = ObjectInput(class_names, obj_feat_dim)
        self.proj = nn.Linear(self.inputs.out_dim, hidden_dim)
        self.score_s = nn.Linear(hidden_dim, hidden_dim)
        self.score_o = nn.Linear(hidden_dim, hidden_dim)
        self.obj_tree = _BiTreeLSTM(hidden_dim, hidden_dim // 2)
        self.obj_classifier = nn.Linear(hidden_dim, c)
        self.edge_tree = _BiTreeLSTM(hidden_dim + self.inputs.class_embed.dim, hidden_dim // 2)
        self.pair = PairFromContext(hidden_dim, hidden_dim, union_feat_dim)
        self.freq = FrequencyBias(c, num_predicates, pair_counts) if use_freq_bias else None
        self.num_classes = c
        self.hidden_dim = self.out_dim = hidden_dim

    def forward(self, inp: RelationInputs) -> ContextOutput:
        x = torch.relu(self.proj(self.inputs(inp)))
        a, b = self.score_s(x), self.score_o(x)
        s, o = inp.pairs[:, 0], inp.pairs[:, 1]
        pair_score_logits = (a[s] * b[o]).sum(-1) / a.shape[1] ** 0.5
        scores = torch.sigmoid(a @ b.t() / a.shape[1] ** 0.5).detach()
        # both TreeLSTMs run level by level over the whole batch's forest
        forest, trees = _image_forest(scores, inp.obj_to_img, inp.num_images)
        obj_ctx = self.obj_tree.forward_forest(x, forest)
        obj_logits = self.obj_classifier(obj_ctx)
        if inp.labels is not None:
            labels = inp.labels
            dists = nn.functional.one_hot(labels, self.num_classes).to(x.dtype)
        else:
            dists = torch.softmax(obj_logits, dim=1)
            labels = 1 + dists[:, 1:].argmax(dim=1)
        e = torch.cat([obj_ctx, self.inputs.class_embed.soft(dists)], dim=1)
        edge_ctx = self.edge_tree.forward_forest(e, forest)
        feats = self.pair(
            edge_ctx, inp.pairs, inp.union_feats, pair_geometry(inp.boxes[s], inp.boxes[o])
        )
        freq = None
        if self.freq is not None:
            freq = (
                self.freq(labels[s], labels[o])
                if inp.labels is not None
                else self.freq.soft(dists[s], dists[o])
            )
        return ContextOutput(
            pair_feats=feats,
            obj_logits=obj_logits,
            freq_logits=freq,
            pair_score_logits=pair_score_logits,
            extras={"trees": trees},
        )
