"""DID's learned equilibrium block: an equivariant network from games to eps-ME (C)CE duals."""

from did_deb_marris.block import DebMarrisBlock, WeightsError, load_weights, save_weights, shipped_weights
from did_deb_marris.network import DebMarrisNet, NetConfig

__all__ = ["DebMarrisBlock", "DebMarrisNet", "NetConfig", "WeightsError", "load_weights", "save_weights",
           "shipped_weights"]
