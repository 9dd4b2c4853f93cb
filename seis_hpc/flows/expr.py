"""A small safe expression language over trace-header fields, evaluated on whole columns.

Used by ``select --where`` (keep traces), ``headers --set`` (header math) and ``sort --keys``.
Expressions are parsed with :mod:`ast` and only these nodes are accepted: field names, numbers,
comparisons (``< <= > >= == !=``, chained), ``and``/``or``/``not``, ``+ - * / // %``, unary
``-``/``+`` and parentheses. Anything else (calls, attributes, subscripts, strings, lambdas...)
is refused, and nothing is ever passed to :func:`eval`. Evaluation is vectorised: every name is
a NumPy column (one value per trace).
"""

from __future__ import annotations

import ast
import operator
import re

import numpy as np

from seis_hpc.errors import SeisError

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
           ast.Eq: operator.eq, ast.NotEq: operator.ne}


class Expression:
    """A parsed expression: ``names`` it reads, and :meth:`evaluate` on columns.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"offset < 400 and ffid <= 20"``.
    known : collection of str
        Field names that exist; any other name is an error naming the field.
    where : str
        Prefix of error messages (``"--where"``).
    hint : str
        What to list as the known names in an error (default: all of them).
    """

    def __init__(self, text: str, known, where: str = "expression", hint: str = ""):
        self.text = text
        self.where = where
        self.hint = hint
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise SeisError(f"{where}: cannot parse {text!r} ({exc.msg} at column "
                            f"{exc.offset})") from None
        self.names: list[str] = []
        self._check(tree.body, set(known))
        self.tree = tree.body

    def _check(self, node, known: set) -> None:
        if isinstance(node, ast.Name):
            if node.id not in known:
                raise SeisError(f"{self.where}: unknown field {node.id!r} in {self.text!r} "
                                f"(known: {self.hint or ', '.join(sorted(known, key=str.lower))})")
            if node.id not in self.names:
                self.names.append(node.id)
            return
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise SeisError(f"{self.where}: only numbers are allowed as constants, got "
                                f"{node.value!r} in {self.text!r}")
            return
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            self._check(node.left, known)
            self._check(node.right, known)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            self._check(node.operand, known)
            return
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v, known)
            return
        if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
            self._check(node.left, known)
            for c in node.comparators:
                self._check(c, known)
            return
        what = type(node).__name__
        raise SeisError(f"{self.where}: {what} is not allowed in {self.text!r} (use field "
                        "names, numbers, + - * / // %, comparisons, and/or/not, parentheses)")

    def evaluate(self, columns: dict) -> np.ndarray:
        """Value of the expression for every trace (``columns``: name -> 1-D array)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self._eval(self.tree, columns))

    def _eval(self, node, cols):
        if isinstance(node, ast.Name):
            return np.asarray(cols[node.id])
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, cols), self._eval(node.right, cols)
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and \
                    np.any(np.asarray(b) == 0):
                raise SeisError(f"{self.where}: division by zero in {self.text!r}")
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, cols)
            if isinstance(node.op, ast.Not):
                return np.logical_not(v)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BoolOp):
            vals = [np.asarray(self._eval(v, cols)).astype(bool) for v in node.values]
            f = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = vals[0]
            for v in vals[1:]:
                out = f(out, v)
            return out
        # Compare: a < b <= c means a < b and b <= c.
        left = self._eval(node.left, cols)
        out = True
        for op, c in zip(node.ops, node.comparators, strict=True):
            right = self._eval(c, cols)
            out = np.logical_and(out, _CMPOPS[type(op)](left, right))
            left = right
        return out


def parse_assignment(text: str, known, targets, where: str = "--set", hint: str = ""
                     ) -> tuple[str, Expression]:
    """``"Field = expression"`` -> (target field, parsed expression).

    ``targets`` are the writable header fields; ``known`` the names the right side may read.
    """
    m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)(.*)$", text, re.S)
    if not m:
        raise SeisError(f"{where}: expected 'FIELD = EXPRESSION', got {text!r}")
    target, rhs = m.group(1), m.group(2)
    if target not in targets:
        raise SeisError(f"{where}: unknown or read-only header field {target!r} in {text!r} "
                        f"(writable: segyio names such as FieldRecord, CDP, offset, ShotPoint)")
    return target, Expression(rhs, known, where, hint)
