"""Integer index expressions, kept in a canonical affine form and simplified.

Movement ops become index arithmetic: a reshape turns an index into a flat
offset and back with division and modulo. Left alone, every load of a
reshaped tensor would pay for divisions. This module keeps each index as
`const + sum(coeff * atom)` and applies the identities that make those
divisions disappear:

    (q*c + r) // c  ==  q          when 0 <= r < c
    (q*c + r) %  c  ==  r          when 0 <= r < c
    (x // c) * c + x % c  ==  x
    (x // a) // b  ==  x // (a*b)

Atoms are loop variables, opaque runtime values (a gathered index), and the
divisions and remainders that could not be simplified away. All values an
index can take are tracked as an inclusive range [lo, hi].
"""
from __future__ import annotations


class Atom:
    """Something an affine expression is built from. Interned by key."""
    __slots__ = ("kind", "a", "b", "lo", "hi", "_hash")

    def __init__(self, kind: str, a, b, lo: int, hi: int):
        self.kind, self.a, self.b, self.lo, self.hi = kind, a, b, lo, hi
        self._hash = hash((kind, a, b))

    def __eq__(self, other):
        return isinstance(other, Atom) and self.kind == other.kind and self.a == other.a and self.b == other.b

    def __hash__(self):
        return self._hash

    def __repr__(self):
        if self.kind == "var":
            return self.a
        if self.kind == "value":
            return f"v{self.a}"
        return f"({self.a} {'//' if self.kind == 'div' else '%'} {self.b})"


def var(name: str, size: int) -> "Expr":
    """A loop variable running over range(size)."""
    return Expr(0, ((Atom("var", name, None, 0, max(size - 1, 0)), 1),))


def value(ref, lo: int, hi: int) -> "Expr":
    """A value only known at run time (e.g. a loaded index), with known bounds."""
    return Expr(0, ((Atom("value", ref, None, lo, hi), 1),))


class Expr:
    """const + sum(coeff * atom). Immutable, hashable."""
    __slots__ = ("const", "terms", "_hash")

    def __init__(self, const: int, terms: tuple = ()):
        self.const = const
        self.terms = terms  # sorted tuple of (atom, coeff) with coeff != 0
        self._hash = hash((const, terms))

    @staticmethod
    def of(c: int) -> "Expr":
        return Expr(int(c), ())

    def __eq__(self, other):
        return isinstance(other, Expr) and self.const == other.const and self.terms == other.terms

    def __hash__(self):
        return self._hash

    def __repr__(self):
        parts = [repr(a) if c == 1 else f"{a}*{c}" for a, c in self.terms]
        if self.const or not parts:
            parts.append(str(self.const))
        return " + ".join(parts)

    @property
    def is_const(self) -> bool:
        return not self.terms

    @property
    def bounds(self) -> tuple[int, int]:
        lo = hi = self.const
        for atom, c in self.terms:
            if c > 0:
                lo += c * atom.lo
                hi += c * atom.hi
            else:
                lo += c * atom.hi
                hi += c * atom.lo
        return lo, hi

    # ---- arithmetic ----
    def __add__(self, other) -> "Expr":
        if not isinstance(other, Expr):
            other = Expr.of(other)
        coeffs: dict = {}
        for atom, c in self.terms + other.terms:
            coeffs[atom] = coeffs.get(atom, 0) + c
        return _normalize(self.const + other.const, coeffs)

    __radd__ = __add__

    def __sub__(self, other) -> "Expr":
        if not isinstance(other, Expr):
            other = Expr.of(other)
        return self + other * -1

    def __mul__(self, k: int) -> "Expr":
        assert isinstance(k, int)
        if k == 0:
            return Expr.of(0)
        return Expr(self.const * k, tuple((a, c * k) for a, c in self.terms))

    __rmul__ = __mul__

    def __floordiv__(self, d: int) -> "Expr":
        assert isinstance(d, int) and d > 0
        if d == 1:
            return self
        lo, hi = self.bounds
        if lo >= 0 and hi < d:
            return Expr.of(0)
        if lo // d == hi // d:
            return Expr.of(lo // d)
        # pull out the part that is a multiple of d
        quotient = Expr.of(0)
        rest_terms = []
        for atom, c in self.terms:
            if c % d == 0:
                quotient = quotient + Expr(0, ((atom, c // d),))
            else:
                rest_terms.append((atom, c))
        quotient = quotient + Expr.of(self.const // d)
        rest = Expr(self.const % d, tuple(rest_terms))
        rlo, rhi = rest.bounds
        if rlo >= 0 and rhi < d:
            return quotient
        if rlo < 0:
            # splitting would leave a possibly negative remainder: divide the whole expression
            # (which is non-negative wherever the index is used) instead
            return _atom_expr("div", self, d)
        # (x // a) // d == x // (a*d)
        if rest.const == 0 and len(rest.terms) == 1:
            atom, c = rest.terms[0]
            if c == 1 and atom.kind == "div":
                return quotient + _atom_expr("div", atom.a, atom.b * d)
        return quotient + _atom_expr("div", rest, d)

    def __mod__(self, d: int) -> "Expr":
        assert isinstance(d, int) and d > 0
        if d == 1:
            return Expr.of(0)
        lo, hi = self.bounds
        if lo >= 0 and hi < d:
            return self
        terms = tuple((a, c % d) for a, c in self.terms if c % d != 0)
        rest = Expr(self.const % d, terms)
        rlo, rhi = rest.bounds
        if rlo >= 0 and rhi < d:
            return rest
        if not self.terms:
            return Expr.of(self.const % d)
        return _atom_expr("mod", rest, d)


def _atom_expr(kind: str, inner: Expr, d: int) -> Expr:
    lo, hi = inner.bounds
    if kind == "div":
        alo, ahi = lo // d, hi // d
    else:
        alo, ahi = (lo, hi) if (lo >= 0 and hi < d) else (0, d - 1)
    return Expr(0, ((Atom(kind, inner, d, alo, ahi), 1),))


def _normalize(const: int, coeffs: dict) -> Expr:
    """Drop zero terms and fold (x // d) * d*k + (x % d) * k into x * k."""
    changed = True
    while changed:
        changed = False
        for atom, c in list(coeffs.items()):
            if atom.kind != "mod" or c == 0:
                continue
            partner = Atom("div", atom.a, atom.b, 0, 0)
            if coeffs.get(partner, 0) == c * atom.b:
                del coeffs[atom]
                del coeffs[partner]
                for inner_atom, inner_c in atom.a.terms:
                    coeffs[inner_atom] = coeffs.get(inner_atom, 0) + inner_c * c
                const += atom.a.const * c
                changed = True
                break
    terms = tuple(sorted(((a, c) for a, c in coeffs.items() if c != 0), key=lambda t: repr(t[0])))
    return Expr(const, terms)
