"""Decision trees flattened into one node table and walked for all trees and rows at once.

scikit-learn walks each tree separately, in Cython, behind per-tree Python dispatch and input
validation (~70 µs a tree for one row). Here every node of every tree lives in four arrays,
renumbered so that a split's right child directly follows its left child:

    left[n]       the left child of n; a leaf points at itself
    feature[n]    the feature n splits on (0 at a leaf)
    threshold[n]  go right when x > threshold (+inf at a leaf, so a leaf stays put)
    value[n]      the leaf's value row (class fractions, or the regression value)

One step of the walk moves every (tree, row) pair down one level:
``node = left[node] + (x[row, feature[node]] > threshold[node])``; after ``depth`` steps
every pair sits on its leaf. Two families of trees share that walk (:class:`TreeNodes`):

    scikit-learn ``Tree``    (trees, forests, GradientBoosting) rows cast to float32 first, as
                             those trees compare; no NaN (their callers reject it)
    HistGradientBoosting     rows compared as float64; a NaN goes right where the split's
                             ``missing_go_to_left`` is false (``NaN > t`` is false: left)

and two ways of adding up what the leaves hold, each in scikit-learn's own order so sums are
bit-identical: :meth:`FlatForest.values` adds the trees' value rows in tree order
(``np.add.accumulate``, sequential by definition) then divides by the tree count, as the forests
do; :meth:`FlatForest.boosted` adds, per output column, a starting value and then each stage's
tree value, stage by stage, as gradient boosting does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from mlcicd.compiler.base import Array, Lean, sk

_LEAF = -1


class TreeNodes(NamedTuple):
    """One tree as parallel node arrays (root 0): the form both tree families are read into."""

    left: Array  # left child id, -1 at a leaf
    right: Array  # right child id
    feature: Array
    threshold: Array  # go right when x > threshold
    value: Array  # (n_nodes, n_values)
    missing_left: Array | None = None  # per node, does NaN go left; None: NaN not handled


def sklearn_tree(tree: Any, scale: float | None = None) -> TreeNodes:
    """A scikit-learn ``Tree`` with one output; its values times ``scale`` when given."""
    if tree.n_outputs != 1:
        raise ValueError("only single-output trees are flattened")
    value = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
    if scale is not None:
        value = scale * value  # predict_stages' ``scale * value``: the same double product
    return TreeNodes(tree.children_left, tree.children_right, tree.feature, tree.threshold, value)


def hist_predictor(nodes: Array) -> TreeNodes:
    """A HistGradientBoosting ``TreePredictor.nodes`` record array (numerical splits only)."""
    if nodes["is_categorical"].any():
        raise ValueError("categorical splits are not flattened")
    leaf = nodes["is_leaf"].astype(bool)
    return TreeNodes(
        left=np.where(leaf, _LEAF, nodes["left"].astype(np.intp)),
        right=np.where(leaf, _LEAF, nodes["right"].astype(np.intp)),
        feature=nodes["feature_idx"],
        threshold=nodes["num_threshold"],
        value=np.asarray(nodes["value"], dtype=np.float64).reshape(-1, 1),
        missing_left=nodes["missing_go_to_left"].astype(bool),
    )


class FlatForest:
    """Trees (:class:`TreeNodes`) as flat arrays, walked together."""

    def __init__(
        self, trees: Sequence[TreeNodes], *, average: bool = False, float32: bool = True
    ) -> None:
        lefts: list[Array] = []
        features: list[Array] = []
        thresholds: list[Array] = []
        values: list[Array] = []
        missing_right: list[Array] = []
        roots: list[int] = []
        offset = 0
        depth = 0
        for tree in trees:
            order, tree_depth = _pairs_order(tree.left, tree.right)
            new_id = np.empty(order.size, dtype=np.intp)
            new_id[order] = np.arange(order.size, dtype=np.intp)
            old_left = tree.left[order]
            leaf = old_left == _LEAF
            left = np.where(leaf, np.arange(order.size), new_id[np.where(leaf, 0, old_left)])
            lefts.append(left.astype(np.intp) + offset)
            features.append(np.where(leaf, 0, tree.feature[order]).astype(np.intp))
            thresholds.append(np.where(leaf, np.inf, tree.threshold[order]).astype(np.float64))
            values.append(np.asarray(tree.value, dtype=np.float64)[order])
            if tree.missing_left is not None:
                missing_right.append(~leaf & ~tree.missing_left[order])
            roots.append(offset)
            offset += order.size
            depth = max(depth, tree_depth)
        if missing_right and len(missing_right) != len(roots):
            raise ValueError("NaN handling for some trees and not others")
        self.left = np.concatenate(lefts)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.value = np.ascontiguousarray(np.concatenate(values))
        self.missing_right = np.concatenate(missing_right) if missing_right else None
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.n_trees = len(roots)
        self.n_values = self.value.shape[1]
        self.average = average
        self.float32 = float32

    def leaves(self, X: Array) -> Array:
        """Leaf ids, shape (n_trees, n_rows), of the rows of ``X`` (2-D, float64 or int)."""
        n_rows, width = X.shape
        if self.float32:
            # float32 as the trees compare, then back to float64 so the comparisons are exact
            # and not a mixed-type loop.
            flat = X.astype(np.float32).astype(np.float64).ravel()
        else:
            flat = np.ascontiguousarray(X, dtype=np.float64).ravel()
        nan: Array | None = None
        missing_right = self.missing_right
        if missing_right is not None:
            nan = np.isnan(flat)
            if not nan.any():
                nan = None
        row_base = np.tile(np.arange(n_rows, dtype=np.intp) * width, self.n_trees)
        node = np.repeat(self.roots, n_rows)
        left, feature, threshold = self.left, self.feature, self.threshold
        for _ in range(self.depth):
            at = row_base + feature.take(node)
            right = flat.take(at) > threshold.take(node)
            if nan is not None and missing_right is not None:
                right |= nan.take(at) & missing_right.take(node)
            node = left.take(node) + right
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

    def boosted(self, X: Array, start: Array) -> Array:
        """``start[k]`` plus, stage by stage, each stage's k-th tree value: (n_rows, len(start)).

        The trees are stage-major, ``len(start)`` single-value trees a stage, the k-th adding to
        column k — gradient boosting's raw predictions.
        """
        k = start.size
        leaves = self.leaves(X)
        per_stage: Array = self.value.take(leaves, axis=0).reshape(-1, k, leaves.shape[1])
        per_stage[0] += start[:, np.newaxis]  # start + first stage (addition commutes exactly)
        total: Array = per_stage[0]
        if len(per_stage) > 1:
            total = np.add.accumulate(per_stage, axis=0)[-1]
        return total.T


def compile_trees(model: Any) -> Lean | None:
    forests, trees_module = sk("sklearn.ensemble._forest"), sk("sklearn.tree")
    ForestClassifier, ForestRegressor = forests.ForestClassifier, forests.ForestRegressor
    BaseDecisionTree = trees_module.BaseDecisionTree
    DecisionTreeClassifier = trees_module.DecisionTreeClassifier

    cls = type(model)
    if getattr(model, "n_outputs_", None) != 1:
        return None
    if cls.predict is BaseDecisionTree.predict:
        classifier = isinstance(model, DecisionTreeClassifier)
        if classifier and cls.predict_proba is not DecisionTreeClassifier.predict_proba:
            return None
        trees = [model]
        average = False
    elif (
        cls.predict is ForestClassifier.predict
        and cls.predict_proba is ForestClassifier.predict_proba
    ):
        classifier, trees, average = True, list(model.estimators_), True
    elif cls.predict is ForestRegressor.predict:
        classifier, trees, average = False, list(model.estimators_), True
    else:
        return None
    if not trees or any(type(t).predict is not BaseDecisionTree.predict for t in trees):
        return None
    forest = FlatForest([sklearn_tree(t.tree_) for t in trees], average=average)
    if classifier:
        classes = np.asarray(model.classes_)
        if forest.n_values != classes.size:
            return None

        def predict(X: Array) -> Array:
            out: Array = classes.take(forest.values(X).argmax(axis=1), axis=0)
            return out

        def proba(X: Array) -> Array:
            return forest.values(X)

        kind = f"{len(trees)} tree(s), {classes.size} classes"
        return Lean(predict, proba, f"{cls.__name__} (flattened, {kind})")

    def regress(X: Array) -> Array:
        out: Array = forest.values(X)[:, 0]
        return out

    return Lean(regress, None, f"{cls.__name__} (flattened, {len(trees)} tree(s))")


def _pairs_order(children_left: Array, children_right: Array) -> tuple[Array, int]:
    """Old node ids in an order where each split's children are adjacent, left first; depth."""
    order = [0]
    level = [0]
    head = 0
    while head < len(order):
        node = order[head]
        left = int(children_left[node])
        if left != _LEAF:
            order.append(left)
            order.append(int(children_right[node]))
            level += [level[head] + 1] * 2
        head += 1
    return np.asarray(order, dtype=np.intp), max(level)


__all__ = ["FlatForest", "TreeNodes", "compile_trees", "hist_predictor", "sklearn_tree"]
