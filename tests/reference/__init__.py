"""Today's straightforward equivariant layers, kept verbatim as the reference the fast layers must match.

``layers.py`` and ``pooling.py`` are the implementation ``did_core.nn`` had before it
was rewritten for speed (pools concatenated over channels, then one linear map).
They are slow and obviously right; ``test_nn_reference.py`` checks the fast layers
against them, and ``benchmarks/training_step.py --reference`` times them.
:func:`to_reference` swaps every fast layer of a module for its reference twin,
sharing the parameters.
"""

from __future__ import annotations

from torch import nn

import did_core.nn.layers as fast
from reference import layers as slow

__all__ = ["to_reference", "TWINS"]

TWINS: dict[type[nn.Module], type[nn.Module]] = {
    getattr(fast, name): getattr(slow, name) for name in ("P2P", "P2D", "D2D", "PO2PO", "PO2O", "O2O")
}


def to_reference(module: nn.Module) -> nn.Module:
    """Replace, in place, every fast layer inside ``module`` by its reference twin (same parameters)."""
    for name, child in list(module.named_children()):
        twin = TWINS.get(type(child))
        if twin is None:
            to_reference(child)
            continue
        replacement = twin.__new__(twin)
        replacement.__dict__.update(child.__dict__)
        replacement.aggregation = slow.get_aggregation(child.aggregation.name)
        if hasattr(child, "concept"):  # the reference layers name their concept
            replacement.concept = child.concept.name
        setattr(module, name, replacement)
    return module
