"""XGBoost's exact SHAP contributions, the same float32 numbers as `Booster.predict(..., pred_contribs=True)`, fast.

XGBoost 3.4's CPU exact SHAP (src/predictor/interpretability/shap.cc) is QuadratureTreeSHAP with a fixed
8-point rule: per row and tree it walks every node (left child, then right), carries an 8-vector down each
edge and a weighted leaf sum back up, and at each edge's return adds one float32 delta into the tree's own
contribution vector, which is then added into the row's. Each value it computes depends on the row only
through which way the row goes at the nodes involved: an edge's delta depends on the way taken at the nodes
above it (its "ancestor pattern") and at the split nodes below it. So for each subtree small enough ("block":
depth plus split nodes at most `_BLOCK_BITS`), every possible pattern's deltas are computed once per model by
a float32 port of XGBoost's code run in XGBoost's order (`_Port`, numpy), and a row only looks them up and adds
them into the tree's vector in XGBoost's order (`_rows`, numba). The split nodes above the blocks (trees
deeper than lapse's) are done per row as XGBoost does them, from tables of the edge's factors.

Dropout's tree weights (DART) scale each tree's vector as in XGBoost. A model this module does not cover
(categorical features, several outputs, a linear booster, objectives other than binary:logistic, reg:logistic
and reg:squarederror, trees too deep for the tables) gets `None` from `TreeShap.build`, and the caller asks
XGBoost. Every built model is also compared with XGBoost on probe rows before use; a difference also means
`None` (and a warning naming no values).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import math
import os
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction

import numpy as np
import xgboost as xgb
from numba import njit

log = logging.getLogger(__name__)

_F = np.float32
_ONE, _ZERO = _F(1.0), _F(0.0)
# XGBoost's marker for a feature not yet on the path (quadrature.h kQuadratureTreeShapUnseen).
_UNSEEN = _F(-999.0)
_MIN_CHILD_WEIGHT = _F(1e-12)
_POINTS = 8
# A subtree whose patterns are tabulated has at most this many path and split bits (2**bits patterns).
_BLOCK_BITS = 10
# Table floats (64 MB) above which a model is left to XGBoost: the tables grow as 4**depth (lapse's depth-4
# champion's take 1 MB; 100 trees of depth 6 or 7 fitted to 20,000 random rows some 43 MB).
_MAX_TABLE_FLOATS = 1 << 24
# Objectives whose base_score XGBoost maps to the margin by the logit, or keeps.
_LOGIT_OBJECTIVES = frozenset({"binary:logistic", "reg:logistic"})
_IDENTITY_OBJECTIVES = frozenset({"reg:squarederror"})
# Rows per thread below which more threads cost more than they save.
_ROWS_PER_THREAD = 32
# Program steps of a tree: a tabulated block, the delta of an edge above the blocks, a node's weighted sum.
_BLOCK, _EDGE, _SUM = 0, 1, 2
# Rows that go through a tree together in `_rows`.
_CHUNK = 64


def _quadrature_rule() -> tuple[np.ndarray, np.ndarray]:
    """XGBoost's 8-point endpoint Gauss-Legendre rule (quadrature.h MakeEndpointQuadrature), in its doubles."""
    n = _POINTS

    def legendre(k: int, x: float) -> float:
        p0, p1 = 1.0, x
        if k == 0:
            return p0
        for j in range(2, k + 1):
            p0, p1 = p1, ((2.0 * j - 1.0) * x * p1 - (j - 1.0) * p0) / j
        return p1

    def derivative(k: int, x: float, pn: float) -> float:
        return k * (x * pn - legendre(k - 1, x)) / (x * x - 1.0)

    nodes, weights = np.zeros(n, _F), np.zeros(n, _F)
    for i in range(n):
        x = math.cos(math.pi * (i + 0.75) / (n + 0.5))
        for _ in range(64):
            pn = legendre(n, x)
            dx = pn / derivative(n, x, pn)
            x -= dx
            if abs(dx) < 1e-15:
                break
        pn = legendre(n, x)
        dpn = derivative(n, x, pn)
        w = 2.0 / ((1.0 - x * x) * dpn * dpn)
        s = 0.5 * (x + 1.0)
        nodes[n - 1 - i] = _F(s * s)
        weights[n - 1 - i] = _F(2.0 * s * (0.5 * w))
    return nodes, weights


_NODES, _WEIGHTS = _quadrature_rule()


def _read_ubjson(data: bytes) -> object:
    """XGBoost's UBJSON model (save_raw("ubj")): the float32 arrays exactly as the booster holds them."""
    types = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}
    pos = 0

    def number(marker: bytes):
        nonlocal pos
        dtype = np.dtype(types[marker])
        out = np.frombuffer(data, dtype, 1, pos)[0]
        pos += dtype.itemsize
        return out

    def length() -> int:
        nonlocal pos
        pos += 1
        return int(number(data[pos - 1:pos]))

    def text() -> str:
        nonlocal pos
        n = length()
        pos += n
        return data[pos - n:pos].decode()

    def value():
        nonlocal pos
        marker = data[pos:pos + 1]
        pos += 1
        if marker in types:
            return number(marker)
        if marker == b"S":
            return text()
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker == b"{":
            out = {}
            while data[pos:pos + 1] != b"}":
                key = text()
                out[key] = value()
            pos += 1
            return out
        if marker == b"[":
            typed = None
            if data[pos:pos + 1] == b"$":
                typed, pos = data[pos + 1:pos + 2], pos + 2
            if data[pos:pos + 1] == b"#":
                pos += 1
                n = length()
                if typed is None:
                    return [value() for _ in range(n)]
                dtype = np.dtype(types[typed])
                out = np.frombuffer(data, dtype, n, pos).astype(dtype.newbyteorder("="))
                pos += n * dtype.itemsize
                return out
            items = []
            while data[pos:pos + 1] != b"]":
                items.append(value())
            pos += 1
            return items
        raise ValueError(f"unexpected UBJSON marker {marker!r} at byte {pos - 1}")

    return value()


def _float32_of(number: str) -> np.float32:
    """The float32 nearest a decimal (ties to even), as XGBoost's JSON reader parses base_score."""
    exact = Fraction(Decimal(number))
    guess = _F(float(number))
    candidates = (np.nextafter(guess, _F(-np.inf)), guess, np.nextafter(guess, _F(np.inf)))
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.uint32)) & 1))


def _logf() -> ctypes._CFuncPtr:
    """The C library's logf, which XGBoost's Logit calls (libm is the one XGBoost's library links)."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    libm.logf.restype, libm.logf.argtypes = ctypes.c_float, [ctypes.c_float]
    return libm.logf


class _Unsupported(Exception):
    """A model (or construct in it) this module leaves to XGBoost; the message says which."""


class _Tree:
    """One tree's arrays as XGBoost holds them (leaf values are in split_conditions), and its shape."""

    def __init__(self, raw: dict):
        if int(raw["tree_param"]["size_leaf_vector"]) > 1:
            raise _Unsupported("vector-leaf trees")
        self.left = np.asarray(raw["left_children"], np.int64)
        self.right = np.asarray(raw["right_children"], np.int64)
        self.feature = np.asarray(raw["split_indices"], np.int64)
        self.cond = np.asarray(raw["split_conditions"], _F)
        self.cover = np.asarray(raw["sum_hessian"], _F)
        self.default_left = np.asarray(raw["default_left"], bool)
        split_type = np.asarray(raw.get("split_type", np.zeros(len(self.left))))
        if len(raw.get("categories_nodes", [])) or np.any(split_type[self.left != -1] != 0):
            raise _Unsupported("categorical splits")
        # Parents, depths and the path from the root, walked from the root (deleted nodes are never reached).
        self.parent, self.depth, self.order = {0: -1}, {0: 0}, []
        stack = [0]
        while stack:
            n = stack.pop()
            self.order.append(n)  # pre-order, left subtree first
            if self.left[n] != -1:
                for child in (self.right[n], self.left[n]):
                    self.parent[int(child)], self.depth[int(child)] = n, self.depth[n] + 1
                    stack.append(int(child))
        for n in self.order:
            if self.left[n] != -1 and (self.cover[n] < 0 or self.cover[self.left[n]] < 0
                                       or self.cover[self.right[n]] < 0):
                raise _Unsupported("negative cover")  # XGBoost refuses these itself

    def is_leaf(self, n: int) -> bool:
        return self.left[n] == -1

    def splits_under(self, n: int) -> list[int]:
        """The split nodes of n's subtree, n first, in pre-order."""
        out, stack = [], [n]
        while stack:
            m = stack.pop()
            if self.left[m] != -1:
                out.append(m)
                stack.extend((int(self.right[m]), int(self.left[m])))
        return out

    def path(self, n: int) -> list[int]:
        """The nodes from the root down to n, n last."""
        out = [n]
        while self.parent[out[-1]] != -1:
            out.append(self.parent[out[-1]])
        return out[::-1]

    def child_weight(self, parent: int, child: int) -> np.float32:
        """quadrature.h BranchWeight."""
        parent_cover = self.cover[parent]
        if parent_cover <= _ZERO:
            return _F(0.5)
        weight = _F(self.cover[child] / parent_cover)
        return _MIN_CHILD_WEIGHT if weight < _MIN_CHILD_WEIGHT else weight

    def root_mean(self, n: int = 0) -> float:
        """quadrature.h FillRootMeanValue, in doubles as there."""
        if self.is_leaf(n):
            return float(self.cond[n])
        left, right = int(self.left[n]), int(self.right[n])
        left_mean, right_mean = self.root_mean(left), self.root_mean(right)
        if self.cover[n] == _ZERO:
            return 0.5 * (left_mean + right_mean)
        return (left_mean * float(self.cover[left]) + right_mean * float(self.cover[right])) / float(self.cover[n])


class _Port:
    """XGBoost's QuadratureTreeShapRunner in float32, every operation in its order, run for many patterns at
    once (one per row of `goes_left`, which says for each node whether the pattern goes left there)."""

    def __init__(self, tree: _Tree, goes_left: np.ndarray):
        self.tree, self.goes_left = tree, goes_left
        self.size = goes_left.shape[0]
        self.path_prob: dict[int, np.ndarray] = {}
        self.deltas: list[tuple[int, int, np.ndarray]] = []  # (child node of the edge, feature, delta)

    def _probability(self, feature: int) -> np.ndarray:
        return self.path_prob.get(feature, np.full(self.size, _UNSEEN, _F))

    def descend(self, parent: int, child: int, c_vals: np.ndarray, w_prod: np.ndarray):
        """VisitChild up to the child's visit: the child's p_e, the parent's p_old, c_vals and w_prod."""
        tree = self.tree
        weight = tree.child_weight(parent, child)
        satisfies = self.goes_left[:, parent] == (child == tree.left[parent])
        p_old = self._probability(int(tree.feature[parent]))
        seen = p_old != _UNSEEN
        p_e = np.where(satisfies, np.where(seen, p_old / weight, _ONE / weight), _ZERO).astype(_F)
        alpha_e = p_e - _ONE
        c_child = c_vals * (_ONE + alpha_e[:, None] * _NODES[None, :])
        alpha_old = p_old - _ONE
        divide = seen & (alpha_old != _ZERO)
        if divide.any():
            c_child = np.where(divide[:, None], c_child / (_ONE + alpha_old[:, None] * _NODES[None, :]), c_child)
        return p_e, p_old, c_child, w_prod * weight

    def visit(self, parent: int, child: int, c_vals: np.ndarray, w_prod: np.ndarray) -> np.ndarray:
        """VisitChild: the child's subtree, then the edge's delta (HandleReturn); returns the child's h."""
        feature = int(self.tree.feature[parent])
        p_e, p_old, c_child, w_child = self.descend(parent, child, c_vals, w_prod)
        self.path_prob[feature] = p_e
        h = self.run(child, c_child, w_child)
        p_exit = np.where(p_old != _UNSEEN, p_old, _ONE).astype(_F)
        self.deltas.append((child, feature, _extract(h, p_e, p_exit)))
        self.path_prob[feature] = p_old
        return h

    def run(self, n: int, c_vals: np.ndarray, w_prod: np.ndarray) -> np.ndarray:
        """RunNode: a leaf's weighted return, or the left child's then the right child's."""
        tree = self.tree
        if tree.is_leaf(n):
            leaf_scale = w_prod * tree.cond[n]
            return (c_vals * leaf_scale[:, None]) * _WEIGHTS[None, :]
        h = self.visit(n, int(tree.left[n]), c_vals, w_prod)
        return h + self.visit(n, int(tree.right[n]), c_vals, w_prod)

    def down_to(self, node: int):
        """Descend from the root to `node`'s parent, setting path probabilities as VisitChild does; returns
        the state the parent's visit of `node` starts with (c_vals, w_prod)."""
        c_vals, w_prod = np.ones((self.size, _POINTS), _F), np.ones(self.size, _F)
        path = self.tree.path(node)
        for parent, child in zip(path[:-2], path[1:-1]):
            p_e, _, c_vals, w_prod = self.descend(parent, child, c_vals, w_prod)
            self.path_prob[int(self.tree.feature[parent])] = p_e
        return c_vals, w_prod


def _extract(h: np.ndarray, p_enter: np.ndarray, p_exit: np.ndarray) -> np.ndarray:
    """ExtractQuadratureDelta: each term as there (alpha * h[i] / (1 + alpha * node[i])), summed in its order."""
    acc = np.zeros(h.shape[0], _F)
    for p, sign in ((p_enter, _ONE), (p_exit, -_ONE)):
        active = p != _ONE
        if not active.any():
            continue
        alpha = (p - _ONE)[:, None]
        terms = alpha * h / (_ONE + alpha * _NODES[None, :])
        total = acc
        for i in range(_POINTS):
            total = total + terms[:, i] if sign > 0 else total - terms[:, i]
        acc = np.where(active, total, acc)
    return acc


def _pattern_bits(tree: _Tree, node: int, split_nodes: list[int], size: int) -> np.ndarray:
    """goes_left for the patterns 0..size-1 of `node`: the high bits are the path's (1 = the pattern goes
    down the path at that ancestor, root first), the low bits one per split node of `split_nodes`."""
    keys = np.arange(size)
    goes_left = np.zeros((size, len(tree.left)), bool)
    for j, n in enumerate(split_nodes):
        goes_left[:, n] = (keys >> j) & 1 == 1
    path = tree.path(node)
    depth = len(path) - 1
    for j, (parent, child) in enumerate(zip(path[:-1], path[1:])):
        along = (keys >> (len(split_nodes) + depth - 1 - j)) & 1 == 1
        goes_left[:, parent] = along if child == tree.left[parent] else ~along
    return goes_left


class _Plan:
    """One tree cut into blocks and the split nodes above them, with its tables: flattened by `TreeShap`."""

    def __init__(self, tree: _Tree):
        self.tree = tree
        self.features = sorted({int(tree.feature[n]) for n in tree.order if not tree.is_leaf(n)})
        self.slot = {f: s for s, f in enumerate(self.features)}
        self.blocks: list[dict] = []
        self.edges: list[dict] = []
        self.program: list[tuple[int, int]] = []
        self.keyed: list[int] = []  # nodes whose path pattern the rows need, in pre-order
        self.seen: set[int] = set()
        if not tree.is_leaf(0):
            self._plan(0)

    @staticmethod
    def table_floats(tree: _Tree, n: int = 0) -> int:
        """How many floats the tables of n's subtree will hold (at most), from the tree's shape alone."""
        if tree.is_leaf(n) and n == 0:
            return 0
        splits = len(tree.splits_under(n))
        depth = tree.depth[n]
        if depth + splits <= _BLOCK_BITS:
            return (1 << (depth + splits)) * (2 * splits + 1 + _POINTS)
        if tree.is_leaf(n):
            raise _Unsupported("trees deeper than the tables reach")
        return ((1 << depth) * 2 * (2 + _POINTS) + _Plan.table_floats(tree, int(tree.left[n]))
                + _Plan.table_floats(tree, int(tree.right[n])))

    def _plan(self, n: int) -> None:
        tree = self.tree
        splits = tree.splits_under(n)
        depth = tree.depth[n]
        if depth + len(splits) <= _BLOCK_BITS:
            self.keyed.append(n)
            self.program.append((_BLOCK, len(self.blocks)))
            self.blocks.append(self._block(n, splits))
            return
        if tree.is_leaf(n):
            raise _Unsupported("trees deeper than the tables reach")
        if n != 0:
            self.keyed.append(n)
        self._plan(int(tree.left[n]))
        self._plan(int(tree.right[n]))
        if n != 0:
            self.program.append((_SUM, n))
            self.program.append((_EDGE, len(self.edges)))
            self.edges.append(self._edge(n))

    def _block(self, node: int, splits: list[int]) -> dict:
        """Every pattern's deltas of the block's edges (its subtree's, then the one into it), in XGBoost's
        order, as adds into the tree's vector: a feature no earlier step touched gets its deltas summed here."""
        tree = self.tree
        size = 1 << (tree.depth[node] + len(splits))
        port = _Port(tree, _pattern_bits(tree, node, splits, size))
        with np.errstate(all="ignore"):
            if node == 0:
                h = port.run(0, np.ones((size, _POINTS), _F), np.ones(size, _F))
            else:
                c_vals, w_prod = port.down_to(node)
                h = port.visit(tree.parent[node], node, c_vals, w_prod)
        summed: dict[int, np.ndarray] = {}
        singles: list[tuple[int, np.ndarray]] = []
        for _, feature, delta in port.deltas:
            slot = self.slot[feature]
            if slot in self.seen:
                singles.append((slot, delta))
            else:
                summed[slot] = summed.get(slot, np.zeros(size, _F)) + delta
        self.seen.update(summed)
        ops = list(summed.items()) + singles
        return {"node": node, "splits": splits, "slots": [s for s, _ in ops],
                "values": np.stack([v for _, v in ops], axis=1) if ops else np.zeros((size, 0), _F),
                "h": h if node != 0 and tree.parent[node] != 0 else None}

    def _edge(self, node: int) -> dict:
        """For the edge into a split node above the blocks, per path pattern: ExtractQuadratureDelta's factors
        (whether each half applies, its alpha and its 8 denominators)."""
        tree = self.tree
        parent = tree.parent[node]
        size = 1 << tree.depth[node]
        port = _Port(tree, _pattern_bits(tree, node, [], size))
        with np.errstate(all="ignore"):
            c_vals, w_prod = port.down_to(node)
            p_e, p_old, _, _ = port.descend(parent, node, c_vals, w_prod)
            p_exit = np.where(p_old != _UNSEEN, p_old, _ONE).astype(_F)
            table = np.zeros((size, 2, 2 + _POINTS), _F)
            for half, p in enumerate((p_e, p_exit)):
                alpha = p - _ONE
                table[:, half, 0] = p != _ONE
                table[:, half, 1] = alpha
                table[:, half, 2:] = _ONE + alpha[:, None] * _NODES[None, :]
        self.seen.add(self.slot[int(tree.feature[parent])])
        return {"node": node, "slot": self.slot[int(tree.feature[parent])], "table": table.reshape(size, -1)}


@njit(cache=True, nogil=True)
def _rows(X, begin, end, out, bias, n_trees, node_off, left, right, split_off, split_local, split_feature,
          split_cond, split_default, keyed_off, keyed_node, keyed_parent, keyed_left, prog_off, prog_kind,
          prog_arg, block_node, block_bits, bits_off, bits_node, op_off, op_slot, value_off, h_off, values,
          edge_node, edge_slot, edge_off, edge_values, slot_off, slot_feature, tree_weight, max_nodes, max_slots):
    """Rows begin..end of X (float32) into out (float32): for each tree, its program in XGBoost's order into the
    tree's vector, then that vector (times the tree's weight) into the row's; trees in order; the bias column.

    Rows go through a tree `_CHUNK` at a time, each step for all of them (the rows are independent, so the
    machine overlaps them); every row still gets its own float32 operations in XGBoost's order."""
    goes_left = np.empty((max_nodes, _CHUNK), np.int64)
    pattern = np.empty((max_nodes, _CHUNK), np.int64)
    pattern[0] = 0
    key = np.empty(_CHUNK, np.int64)
    h = np.empty((max_nodes, 8, _CHUNK), np.float32)
    phi = np.empty((max_slots, _CHUNK), np.float32)
    for first in range(begin, end, _CHUNK):
        m = min(_CHUNK, end - first)
        for t in range(n_trees):
            base = node_off[t]
            # The way each row goes at each split: missing -> the default child, else value < condition.
            for i in range(split_off[t], split_off[t + 1]):
                f, c, d, n = split_feature[i], split_cond[i], split_default[i], split_local[i]
                for r in range(m):
                    x = X[first + r, f]
                    goes_left[n, r] = (x < c) | ((x != x) & d)
            # Path patterns, root first: 1 where the row goes the path's way.
            for j in range(keyed_off[t], keyed_off[t + 1]):
                parent, node, side = keyed_parent[j], keyed_node[j], keyed_left[j]
                for r in range(m):
                    pattern[node, r] = pattern[parent, r] * 2 + (goes_left[parent, r] == side)
            n_slots = slot_off[t + 1] - slot_off[t]
            for s in range(n_slots):
                for r in range(m):
                    phi[s, r] = np.float32(0.0)
            for j in range(prog_off[t], prog_off[t + 1]):
                kind, arg = prog_kind[j], prog_arg[j]
                if kind == 0:  # a block: its pattern's adds (and its h, for a split above it)
                    node = block_node[arg]
                    shift = block_bits[arg]
                    for r in range(m):
                        key[r] = pattern[node, r] << shift
                    for i in range(bits_off[arg], bits_off[arg + 1]):
                        n, b = bits_node[i], i - bits_off[arg]
                        for r in range(m):
                            key[r] |= goes_left[n, r] << b
                    width = op_off[arg + 1] - op_off[arg]
                    for i in range(width):
                        s, at = op_slot[op_off[arg] + i], value_off[arg] + i
                        for r in range(m):
                            phi[s, r] += values[at + key[r] * width]
                    if h_off[arg] >= 0:
                        for i in range(8):
                            at = h_off[arg] + i
                            for r in range(m):
                                h[node, i, r] = values[at + key[r] * 8]
                elif kind == 2:  # a split node's h: its left child's plus its right child's
                    lc, rc = left[base + arg], right[base + arg]
                    for i in range(8):
                        for r in range(m):
                            h[arg, i, r] = h[lc, i, r] + h[rc, i, r]
                else:  # the edge into a split node above the blocks: ExtractQuadratureDelta
                    node = edge_node[arg]
                    s = edge_slot[arg]
                    for r in range(m):
                        at = edge_off[arg] + pattern[node, r] * 20
                        acc = np.float32(0.0)
                        if edge_values[at] != 0:
                            alpha = edge_values[at + 1]
                            for i in range(8):
                                acc += alpha * h[node, i, r] / edge_values[at + 2 + i]
                        if edge_values[at + 10] != 0:
                            alpha = edge_values[at + 11]
                            for i in range(8):
                                acc -= alpha * h[node, i, r] / edge_values[at + 12 + i]
                        phi[s, r] += acc
            w = tree_weight[t]
            for s in range(n_slots):
                f = slot_feature[slot_off[t] + s]
                for r in range(m):
                    out[first + r, f] += phi[s, r] * w
    for r in range(begin, end):
        out[r, out.shape[1] - 1] = bias


_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


# A forked child has none of the parent's pool threads: it makes its own pool.
os.register_at_fork(after_in_child=_POOL.clear)


def _pool() -> ThreadPoolExecutor:
    """The threads that take the other parts of a call's rows (the calling thread takes the first)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="treeshap"))
        return _POOL[0]


class TreeShap:
    """A booster's tables; `contributions` gives what XGBoost's pred_contribs gives, as float64."""

    def __init__(self, raw: bytes):
        model = _read_ubjson(raw)
        learner = model["learner"]
        booster, params = learner["gradient_booster"], learner["learner_model_param"]
        if booster.get("name") != "gbtree":
            raise _Unsupported(f"booster {booster.get('name')}")
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) > 1:
            raise _Unsupported("several outputs")
        if "c" in learner.get("feature_types", []) or len(booster["model"].get("cats", {}).get("enc", [])):
            raise _Unsupported("categorical features")
        objective = learner["objective"]["name"]
        if objective not in _LOGIT_OBJECTIVES | _IDENTITY_OBJECTIVES:
            raise _Unsupported(f"objective {objective}")
        trees_raw = booster["model"]["trees"]
        if any(int(g) != 0 for g in booster["model"].get("tree_info", [])):
            raise _Unsupported("several output groups")
        self.n_features = int(params["num_feature"])
        trees = [_Tree(t) for t in trees_raw]
        # Dropout's tree weights (weight_drop; 1 without dropout), by which XGBoost scales each tree's vector.
        weights = np.asarray(booster["model"].get("weight_drop", np.ones(len(trees))), _F)
        if len(weights) != len(trees):
            raise _Unsupported("tree weights that do not match the trees")
        if sum(_Plan.table_floats(t) for t in trees) > _MAX_TABLE_FLOATS:
            raise _Unsupported("tables too large")
        self.bias = self._bias(trees, weights, params["base_score"], objective)
        self._flatten([_Plan(t) for t in trees], weights)

    @staticmethod
    def _bias(trees: list[_Tree], weights: np.ndarray, base_score: str, objective: str) -> np.float32:
        """The bias column: the trees' weighted root means summed in doubles, as float32, plus the base margin."""
        total = 0.0
        for tree, weight in zip(trees, weights):
            total += tree.root_mean() * float(weight)
        scores = base_score.strip("[]").split(",")
        if len(scores) != 1:
            raise _Unsupported("several base scores")
        score = _float32_of(scores[0])
        if objective in _LOGIT_OBJECTIVES:
            eps = _F(1e-6)
            score = min(max(score, eps), _ONE - eps)
            score = _F(-_logf()(_F(_ONE / score - _ONE)))
        return _F(_F(total) + score)

    def _flatten(self, plans: list[_Plan], weights: np.ndarray) -> None:
        """All trees' arrays end to end, for `_rows`."""
        a: dict[str, list] = {k: [] for k in (
            "node_off", "left", "right", "split_off", "split_local", "split_feature", "split_cond",
            "split_default", "keyed_off", "keyed_node", "keyed_parent", "keyed_left", "prog_off", "prog_kind",
            "prog_arg", "block_node", "block_bits", "bits_off", "bits_node", "op_off", "op_slot", "value_off",
            "h_off", "edge_node", "edge_slot", "edge_off", "slot_off", "slot_feature")}
        values, edge_values = [], []
        n_values = n_edge_values = 0
        for key in ("node_off", "split_off", "keyed_off", "prog_off", "bits_off", "op_off", "slot_off"):
            a[key].append(0)
        for plan in plans:
            tree = plan.tree
            a["left"].extend(tree.left)
            a["right"].extend(tree.right)
            a["node_off"].append(len(a["left"]))
            for n in tree.order:
                if not tree.is_leaf(n):
                    a["split_local"].append(n)
                    a["split_feature"].append(tree.feature[n])
                    a["split_cond"].append(tree.cond[n])
                    a["split_default"].append(tree.default_left[n])
            a["split_off"].append(len(a["split_local"]))
            for n in plan.keyed:
                if n != 0:
                    a["keyed_node"].append(n)
                    a["keyed_parent"].append(tree.parent[n])
                    a["keyed_left"].append(n == tree.left[tree.parent[n]])
            a["keyed_off"].append(len(a["keyed_node"]))
            block_base, edge_base = len(a["block_node"]), len(a["edge_node"])
            for kind, arg in plan.program:
                a["prog_kind"].append(kind)
                a["prog_arg"].append(arg + block_base if kind == _BLOCK else arg + edge_base if kind == _EDGE
                                     else arg)
            a["prog_off"].append(len(a["prog_kind"]))
            for block in plan.blocks:
                a["block_node"].append(block["node"])
                a["block_bits"].append(len(block["splits"]))
                a["bits_node"].extend(block["splits"])
                a["bits_off"].append(len(a["bits_node"]))
                a["op_slot"].extend(block["slots"])
                a["op_off"].append(len(a["op_slot"]))
                a["value_off"].append(n_values)
                values.append(block["values"].reshape(-1))
                n_values += block["values"].size
                if block["h"] is None:
                    a["h_off"].append(-1)
                else:
                    a["h_off"].append(n_values)
                    values.append(block["h"].reshape(-1))
                    n_values += block["h"].size
            for edge in plan.edges:
                a["edge_node"].append(edge["node"])
                a["edge_slot"].append(edge["slot"])
                a["edge_off"].append(n_edge_values)
                edge_values.append(edge["table"].reshape(-1))
                n_edge_values += edge["table"].size
            a["slot_feature"].extend(plan.features)
            a["slot_off"].append(len(a["slot_feature"]))
        arrays = {k: np.asarray(v, np.int64) for k, v in a.items()}
        arrays["split_cond"] = np.asarray(a["split_cond"], _F)
        values.append(np.zeros(1, _F))
        edge_values.append(np.zeros(1, _F))
        self._args = (len(plans), *(arrays[k] for k in (
            "node_off", "left", "right", "split_off", "split_local", "split_feature", "split_cond", "split_default",
            "keyed_off", "keyed_node", "keyed_parent", "keyed_left", "prog_off", "prog_kind", "prog_arg",
            "block_node", "block_bits", "bits_off", "bits_node", "op_off", "op_slot", "value_off", "h_off")),
            np.concatenate(values), *(arrays[k] for k in ("edge_node", "edge_slot", "edge_off")),
            np.concatenate(edge_values), arrays["slot_off"], arrays["slot_feature"], weights,
            max([1] + [len(p.tree.left) for p in plans]), max([1] + [len(p.features) for p in plans]))
        self._splits = (arrays["split_feature"], arrays["split_cond"])
        self.table_bytes = sum(v.nbytes for v in self._args if isinstance(v, np.ndarray))

    def contributions(self, X: np.ndarray, nthread: int = 1) -> np.ndarray:
        """Rows of X (2-D, one column per feature) -> (rows, features + 1) float64, bias last."""
        X = np.ascontiguousarray(X, dtype=_F)  # XGBoost's DMatrix holds float32 (rounded to nearest)
        out = np.zeros((X.shape[0], self.n_features + 1), _F)
        n = X.shape[0]
        parts = max(1, min(nthread, n // _ROWS_PER_THREAD))
        if parts == 1:
            _rows(X, 0, n, out, self.bias, *self._args)
        else:
            cuts = [n * i // parts for i in range(parts + 1)]
            futures = [_pool().submit(_rows, X, cuts[i], cuts[i + 1], out, self.bias, *self._args)
                       for i in range(1, parts)]
            _rows(X, cuts[0], cuts[1], out, self.bias, *self._args)
            for future in futures:
                future.result()
        return out.astype(np.float64)

    @classmethod
    def build(cls, booster: xgb.Booster) -> "TreeShap | None":
        """The booster's tables, or None when XGBoost must answer for this model (the reason is logged)."""
        raw = bytes(booster.save_raw("ubj"))
        digest = hashlib.sha256(raw).digest()
        with _CACHE_LOCK:
            if digest in _BY_CONTENT:
                _BY_CONTENT.move_to_end(digest)
                return _BY_CONTENT[digest]
        try:
            shap = cls(raw)
            shap._check(booster)
        except _Unsupported as why:
            log.info("SHAP contributions by XGBoost for this model: %s", why)
            shap = None
        with _CACHE_LOCK:
            _BY_CONTENT[digest] = shap
            while len(_BY_CONTENT) > _CONTENT_CACHE:
                _BY_CONTENT.popitem(last=False)
        return shap

    def _check(self, booster: xgb.Booster) -> None:
        """Probe rows (thresholds, just below them, missing values) against XGBoost's own contributions."""
        rng = np.random.default_rng(0)
        thresholds: list[list[float]] = [[] for _ in range(self.n_features)]
        for feature, cond in zip(*self._splits):
            thresholds[feature].append(float(cond))
        X = rng.normal(size=(128, self.n_features))
        for j, values in enumerate(thresholds):
            if values:
                picks = rng.choice(np.asarray(values, _F), size=len(X))
                X[:, j] = np.where(rng.random(len(X)) < 0.5, picks, np.nextafter(picks, _F(-np.inf)))
        X[rng.random(X.shape) < 0.2] = np.nan
        X[0] = np.nan
        want = booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True, validate_features=False)
        if not np.array_equal(self.contributions(X), np.asarray(want, np.float64)):
            log.warning("SHAP tables differ from XGBoost on probe rows: contributions by XGBoost for this model")
            raise _Unsupported("probe rows differ")


_CACHE_LOCK = threading.Lock()
_CONTENT_CACHE = 8
_BY_CONTENT: "OrderedDict[bytes, TreeShap | None]" = OrderedDict()
_BY_BOOSTER: "weakref.WeakKeyDictionary[xgb.Booster, tuple[int, TreeShap | None]]" = weakref.WeakKeyDictionary()


def for_booster(booster: xgb.Booster) -> TreeShap | None:
    """The tables of this booster object, built at its first call (copies of one model share them); rebuilt
    if the booster has been trained further since."""
    rounds = booster.num_boosted_rounds()
    with _CACHE_LOCK:
        known = _BY_BOOSTER.get(booster)
    if known is not None and known[0] == rounds:
        return known[1]
    shap = TreeShap.build(booster)
    with _CACHE_LOCK:
        _BY_BOOSTER[booster] = (rounds, shap)
    return shap
