"""Decision trees flattened into one node table and walked for all trees and rows at once.

scikit-learn walks each tree separately, in Cython, behind per-tree Python dispatch and input
validation (~70 µs a tree for one row). Here every node of every tree lives in four arrays,
renumbered so that a split's right child directly follows its left child:

    left[n]       the left child of n; a leaf points at itself
    feature[n]    the feature n splits on (0 at a leaf)
    threshold[n]  go right when x > threshold (+inf at a leaf, so a leaf stays put)
    value[n]      the leaf's value row (class fractions, or the regression value)

One step of the walk moves every (tree, row) pair down one level:
``node = left[node] + (x[row, feature[node]] > threshold[node])``; after ``max_depth``
steps every pair sits on its leaf. Rows are cast to float32 first, as scikit-learn's trees
do, and the per-tree values are added in tree order (``np.add.accumulate``, sequential by
definition) then divided by the tree count, as the forests do — so sums are bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
_LEAF = -1


class FlatForest:
    """Trees (scikit-learn ``Tree`` objects with one output) as flat arrays."""

    def __init__(self, trees: Sequence[Any], *, classifier: bool, average: bool) -> None:
        lefts: list[Array] = []
        features: list[Array] = []
        thresholds: list[Array] = []
        values: list[Array] = []
        roots: list[int] = []
        offset = 0
        depth = 0
        for tree in trees:
            if tree.n_outputs != 1:
                raise ValueError("only single-output trees are flattened")
            order = _pairs_order(tree.children_left, tree.children_right)
            new_id = np.empty(order.size, dtype=np.intp)
            new_id[order] = np.arange(order.size, dtype=np.intp)
            old_left = tree.children_left[order]
            leaf = old_left == _LEAF
            left = np.where(leaf, np.arange(order.size), new_id[np.where(leaf, 0, old_left)])
            lefts.append(left.astype(np.intp) + offset)
            features.append(np.where(leaf, 0, tree.feature[order]).astype(np.intp))
            thresholds.append(np.where(leaf, np.inf, tree.threshold[order]).astype(np.float64))
            value = np.asarray(tree.value, dtype=np.float64)[order, 0, :]
            values.append(value if classifier else value[:, :1])
            roots.append(offset)
            offset += order.size
            depth = max(depth, int(tree.max_depth))
        self.left = np.concatenate(lefts)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.value = np.ascontiguousarray(np.concatenate(values))
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.n_trees = len(roots)
        self.n_values = self.value.shape[1]
        self.average = average

    def leaves(self, X: Array) -> Array:
        """Leaf ids, shape (n_trees, n_rows), of the rows of ``X`` (2-D, float64 or int)."""
        n_rows, width = X.shape
        # float32 as the trees compare, then back to float64 so the comparisons are exact
        # and not a mixed-type loop.
        flat = X.astype(np.float32).astype(np.float64).ravel()
        row_base = np.tile(np.arange(n_rows, dtype=np.intp) * width, self.n_trees)
        node = np.repeat(self.roots, n_rows)
        left, feature, threshold = self.left, self.feature, self.threshold
        for _ in range(self.depth):
            x = flat.take(row_base + feature.take(node))
            node = left.take(node) + (x > threshold.take(node))
        leaves: Array = node.reshape(self.n_trees, n_rows)
        return leaves

    def values(self, X: Array) -> Array:
        """Sum (or mean) over trees of the leaf values, shape (n_rows, n_values)."""
        per_tree: Array = self.value.take(self.leaves(X), axis=0)  # (n_trees, n_rows, n_values)
        if self.n_trees == 1:
            single: Array = per_tree[0]
            return single
        total: Array = np.add.accumulate(per_tree, axis=0)[-1]
        if self.average:
            total /= self.n_trees
        return total


def _pairs_order(children_left: Array, children_right: Array) -> Array:
    """Old node ids in an order where each split's children are adjacent, left first."""
    order = [0]
    head = 0
    while head < len(order):
        node = order[head]
        head += 1
        left = int(children_left[node])
        if left != _LEAF:
            order.append(left)
            order.append(int(children_right[node]))
    return np.asarray(order, dtype=np.intp)
