"""The registry of theorems: a stable, ordered collection looked up by id (never guessed)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from vitconv.proofs.theorem import Theorem


class Registry:
    """Theorems in presentation order; ``get`` raises ``KeyError`` naming the known ids."""

    def __init__(self, theorems: Iterable[Theorem] = ()) -> None:
        self._theorems: dict[str, Theorem] = {}
        for theorem in theorems:
            self.register(theorem)

    def register(self, theorem: Theorem) -> Theorem:
        if theorem.id in self._theorems:
            raise ValueError(f"theorem id {theorem.id!r} is registered twice")
        self._theorems[theorem.id] = theorem
        return theorem

    def get(self, theorem_id: str) -> Theorem:
        try:
            return self._theorems[theorem_id]
        except KeyError:
            raise KeyError(f"no theorem {theorem_id!r}; known: {', '.join(self._theorems)}") \
                from None

    def __iter__(self) -> Iterator[Theorem]:
        return iter(self._theorems.values())

    def __len__(self) -> int:
        return len(self._theorems)

    def obligation_ids(self) -> list[str]:
        return [o.id for t in self for o in t.obligations]

    def select(self, names: Iterable[str] | None) -> tuple[list[Theorem], set[str] | None]:
        """Theorems and obligation ids matching ``names`` (theorem or obligation ids).

        ``None`` selects everything. Raises ``KeyError`` for a name that matches nothing.
        """
        if names is None:
            return list(self), None
        wanted: set[str] = set()
        for name in names:
            if name in self._theorems:
                wanted.update(o.id for o in self._theorems[name].obligations)
            elif name in self.obligation_ids():
                wanted.add(name)
            else:
                raise KeyError(f"{name!r} is neither a theorem nor an obligation; theorems: "
                               f"{', '.join(self._theorems)}")
        chosen = [t for t in self if any(o.id in wanted for o in t.obligations)]
        return chosen, wanted


def default_registry() -> Registry:
    """Every theorem of the project, in the order of docs/theory.md §3."""
    from vitconv.proofs.theorems import THEOREMS

    return Registry(THEOREMS)
