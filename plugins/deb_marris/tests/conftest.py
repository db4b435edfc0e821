import pytest
import torch

from did_deb_marris import DebMarrisNet, NetConfig, save_weights


def small_net(concept: str, seed: int = 0) -> DebMarrisNet:
    torch.manual_seed(seed)
    net = DebMarrisNet(NetConfig(concept=concept, width=8, p2p_layers=2, d2d_layers=1, head_bias=0.0,
                                 row_scale="inv_actions" if concept == "ce" else "none"))
    with torch.no_grad():  # a non-trivial head so that equivariance tests see varied outputs
        net.head.linear.weight.normal_(0.0, 0.5)
    return net.double().eval()


@pytest.fixture(params=["cce", "ce"])
def concept(request) -> str:
    return request.param


@pytest.fixture
def random_weights(tmp_path, concept):
    """A weights file of a small random network (max 6 actions, eps_rel 0.05)."""
    path = tmp_path / f"{concept}.pt"
    save_weights(path, small_net(concept), {"max_actions": 6, "n_players": 2, "eps_rel": 0.05})
    return path
