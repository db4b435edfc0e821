"""Reading the exchange files: a menu (``kind: "menu"``) or an affine maximizer (``kind: "ama"``) as JSON.

Every check a file can fail is one ``ValueError`` line naming the field, so a command
reports it as ``did: error: FILE: ...``. Formats (values independent uniform per bidder
and item):

* menu: ``{"kind": "menu", "items": k, "valuation": "additive"|"unit_demand",
  "distribution": {"low": [..k], "high": [..k]}, "options": [{"alloc": [..k], "price": p}, ...]}``;
* ama: ``{"kind": "ama", "bidders": n, "items": k, "distribution": {"low": [[..k]..n],
  "high": [[..k]..n]}, "weights": [..n], "outcomes": [{"alloc": [[..k]..n], "boost": b}, ...]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from did_core.files import read_json_file, shown
from did_auctions.ama import AuctionAMA, ama_from_json
from did_auctions.checks import MAX_FILE_BYTES, MAX_ITEMS, check_keys, count, number_list
from did_auctions.menu import MAX_OPTIONS, Menu
from did_auctions.values import VALUATIONS, Box

__all__ = ["read_mechanism", "menu_from_json"]

def menu_from_json(data: Any) -> Menu:
    """A :class:`Menu` from the exchange form (already parsed JSON)."""
    data = check_keys(data, "the menu", {"kind", "items", "valuation", "distribution", "options"})
    items = count(data["items"], "items", MAX_ITEMS)
    if data["valuation"] not in VALUATIONS:
        raise ValueError(f"valuation must be one of {', '.join(VALUATIONS)}, got {shown(data['valuation'])}")
    dist = check_keys(data["distribution"], "distribution", {"low", "high"})
    box = Box(tuple(number_list(dist["low"], "distribution.low", items)),
              tuple(number_list(dist["high"], "distribution.high", items)))
    options = data["options"]
    if not isinstance(options, list) or not 1 <= len(options) <= MAX_OPTIONS:
        raise ValueError(f"options must be a list of 1 to {MAX_OPTIONS} options, got {shown(options)}")
    alloc, price = [], []
    for i, option in enumerate(options):
        option = check_keys(option, f"options[{i}]", {"alloc", "price"})
        alloc.append(number_list(option["alloc"], f"options[{i}].alloc", items))
        price.append(number_list([option["price"]], f"options[{i}].price", 1)[0])
    return Menu(torch.tensor(alloc, dtype=torch.float64), torch.tensor(price, dtype=torch.float64),
                data["valuation"], box)


def read_mechanism(path: Path) -> Menu | AuctionAMA:
    """The :class:`Menu` or :class:`AuctionAMA` of an exchange file; ``ValueError`` (one line) otherwise."""
    try:
        data = read_json_file(path, MAX_FILE_BYTES)
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind == "menu":
            return menu_from_json(data)
        if kind == "ama":
            return ama_from_json(data)
        raise ValueError(f"kind must be \"menu\" or \"ama\", got {shown(kind)}")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
