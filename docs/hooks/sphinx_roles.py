"""A griffe extension for the API reference: Sphinx cross-reference roles in docstrings become code spans.

The docstrings of this project name other objects the Sphinx way (``:class:`~did_core.concepts.Concept```,
``:func:`get_concept```), which reads well in the source and in ``help()``; Markdown would show the role
verbatim. This rewrites each role to a code span of the name as Sphinx displays it (``~`` keeps the last
component) before mkdocstrings renders the docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")


def plain_roles(text: str) -> str:
    """``text`` with every Sphinx role ``:role:`target``` replaced by a code span of the displayed name."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
