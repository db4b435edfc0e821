"""The checks of an equilibrium concept (:func:`concept_checks`).

* **operator products**: on padded, non-square and 3-player games, the rows ``D [B, K, J]`` read off
  ``regrets`` (``D e_j`` for every unit joint ``e_j``) equal ``dense()``, and ``transpose``, ``rows`` (of every
  game and of a subset) agree with them to :data:`PRODUCTS`; the products are differentiable in the payoffs;
* **padding**: padded rows (``real`` false) and padded joint actions have all-zero rows and columns; ``owners`` is
  ``[K]`` with players or ``-1``;
* **dual shape and mask**: ``dual_shape(sizes)`` holds the ``K`` rows of games of those padded sizes, non-square
  ones too, and ``dual_mask(mask, sizes)`` is ``[B, *dual_shape]`` and flags exactly the real rows;
* **options**: the defaults make the concept, its options dumped and given back make an equal one, an unknown
  option and a value of the wrong type are each refused with one ``ValueError`` line naming the option;
* **solved exactly**: the preferred installed exact block agrees with the independent solver
  (:func:`did_core.plugin_checks.blocks.agrees_with_reference`) and passes the gradcheck
  (:func:`did_core.plugin_checks.blocks.gradients`) under the concept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from did_core.concepts import Concept
from did_core.plugin_checks.blocks import agrees_with_reference, gradients, preferred_exact_factory
from did_core.plugin_checks.checks import Check, CheckFailed, expect
from did_core.plugin_checks.games import FAMILIES, largest

__all__ = ["concept_checks", "operator_products", "padding", "dual_layout", "options", "PRODUCTS"]

#: The most a product may differ from the one with the dense rows (float64, payoffs of unit scale).
PRODUCTS = 1e-10


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=PRODUCTS, rtol=PRODUCTS)


def operator_products(concept: Concept) -> None:
    """See the module docstring, *operator products*."""
    for family in FAMILIES:
        games, mask = family.draw(5)
        op = concept.operator(games, mask)
        unit = torch.eye(op.joints, dtype=torch.float64)
        rows = torch.stack([op.regrets(unit[j].expand(op.batch, -1)) for j in range(op.joints)], dim=2)
        expect(_close(op.dense(), rows), f"{family.name}: dense() differs from the rows regrets() gives")
        alpha = torch.rand(op.batch, op.n_rows, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        expect(_close(op.transpose(alpha), torch.einsum("bkj,bk->bj", rows, alpha)),
               f"{family.name}: transpose(alpha) differs from D^T alpha")
        index = torch.randint(op.n_rows, (op.batch, 3), generator=torch.Generator().manual_seed(1))
        picked = rows.gather(1, index.unsqueeze(2).expand(-1, -1, op.joints))
        expect(_close(op.rows(index), picked), f"{family.name}: rows(index) differs from the dense rows")
        subset = torch.tensor([op.batch - 1, 0])
        expect(_close(op.rows(index[:2], subset), rows[subset].gather(1, index[:2].unsqueeze(2).expand(
            -1, -1, op.joints))), f"{family.name}: rows(index, games) differs from the rows of those games")
        payoffs = games.clone().requires_grad_(True)
        sigma = torch.softmax(torch.randn(op.batch, op.joints, dtype=torch.float64), dim=1)
        (grad,) = torch.autograd.grad(concept.operator(payoffs, mask).regrets(sigma).sum(), payoffs, allow_unused=True)
        expect(grad is not None and bool(torch.isfinite(grad).all()),
               f"{family.name}: regrets() is not differentiable in the payoffs")


def padding(concept: Concept) -> None:
    """See the module docstring, *padding*."""
    for family in FAMILIES:
        games, mask = family.draw(6)
        op = concept.operator(games, mask)
        dense = op.dense()
        expect(tuple(op.real.shape) == (op.batch, op.n_rows) and tuple(op.owners.shape) == (op.n_rows,),
               f"{family.name}: real has shape {list(op.real.shape)} and owners {list(op.owners.shape)}, expected "
               f"{[op.batch, op.n_rows]} and {[op.n_rows]}")
        expect(bool(((op.owners >= -1) & (op.owners < op.n_players)).all()),
               f"{family.name}: owners holds {sorted(set(op.owners.tolist()))}, not players or -1")
        expect(largest(dense[~op.real]) == 0, f"{family.name}: a padded row is not zero")
        expect(largest(dense.transpose(1, 2)[~op.joint]) == 0,
               f"{family.name}: a padded joint action has nonzero entries")


def dual_layout(concept: Concept) -> None:
    """See the module docstring, *dual shape and mask*."""
    for family in FAMILIES:
        games, mask = family.draw(7)
        op = concept.operator(games, mask)
        shape = concept.dual_shape(family.sizes)
        expect(math.prod(shape) == op.n_rows, f"{family.name}: dual_shape {list(shape)} does not hold the "
               f"{op.n_rows} rows")
        dual_mask = concept.dual_mask(mask, family.sizes)
        expect(tuple(dual_mask.shape) == (op.batch, *shape), f"{family.name}: dual_mask has shape "
               f"{list(dual_mask.shape)}, expected {[op.batch, *shape]}")
        expect(torch.equal(dual_mask.reshape(op.batch, -1), op.real), f"{family.name}: dual_mask flags other rows "
               f"than the operator's real rows")


def _refusal(kind: type[Concept], option: str, value: Any) -> None:
    """``kind(option=value)`` must raise one ``ValueError`` line naming ``option``."""
    try:
        kind(**{option: value})
    except ValueError as error:
        message = str(error)
        expect("\n" not in message and option in message,
               f"option {option}={value!r} is refused, but not in one line naming it: {message!r}")
        return
    raise CheckFailed(f"option {option}={value!r} is accepted")


def options(concept: Concept) -> None:
    """See the module docstring, *options*."""
    kind = type(concept)
    default = kind()
    again = kind(**concept.options.model_dump())
    expect(again == concept, f"{concept!r} made again from its options is {again!r}, not an equal concept")
    expect("\n" not in kind.describe_options(), "describe_options() is not one line")
    _refusal(kind, "no_such_option", 1)
    for field, info in type(default.options).model_fields.items():
        if info.annotation is not Any:
            _refusal(kind, field, object())


def _under_preferred(check: Callable[..., None], concept: Concept, *args: Any) -> None:
    """``check(factory, concept, *args)`` with the factory of the preferred installed exact block for ``concept``."""
    check(preferred_exact_factory(concept), concept, *args)


def concept_checks(concept: Concept, quick: bool = False) -> list[Check]:
    """The checks of ``concept`` (with the options it has); ``quick``: a smaller gradcheck."""
    subject = f"concept {concept.name}"
    return [
        Check(subject, "operator products equal its dense rows", partial(operator_products, concept)),
        Check(subject, "zero rows and columns on padding", partial(padding, concept)),
        Check(subject, "dual shape and mask, non-square games too", partial(dual_layout, concept)),
        Check(subject, "options validated in one line", partial(options, concept)),
        Check(subject, "the preferred exact block agrees with an independent solver",
              partial(_under_preferred, agrees_with_reference, concept)),
        Check(subject, "double-precision gradcheck through the preferred exact block",
              partial(_under_preferred, gradients, concept, quick)),
    ]
