"""Reading and writing single games ``[N, A_1, ..., A_N]`` (docs/mathematics.md, section 1).

Supported files (chosen by suffix, case-insensitive):

* ``.json`` -- an object ``{"payoffs": [...]}`` with the payoffs nested
  ``[N][A_1]...[A_N]`` (``payoffs[p][a_1]...[a_N]`` is player ``p``'s payoff).
  Optional keys: ``"name"`` (a string), ``"players"`` (``N`` labels),
  ``"actions"`` (``N`` lists of labels, list ``p`` of length ``A_p``); when
  present they are validated against the payoffs. Other keys are ignored.
* ``.npy`` -- a numeric numpy array of shape ``[N, A_1, ..., A_N]``
  (loaded with ``allow_pickle=False``).
* ``.nfg`` -- Gambit strategic-form files, both the payoff version
  (a flat list of payoffs after the header) and the outcome version (a list of
  outcomes ``{ "name" u_1, ..., u_N }`` followed by one outcome index per
  contingency, ``0`` being the null outcome with all-zero payoffs).
  Contingencies are listed with player 1's action varying fastest. Payoffs may
  be integers, decimals (with optional exponent) or rationals such as ``3/2``;
  commas between payoffs are optional. Quoted strings may contain spaces,
  braces and escaped quotes (a backslash escapes the next character).

A ``.json`` object with a ``"prior"`` key is a Bayesian game
(``[N][T_1]..[T_N][A_1]..[A_N]`` payoffs; :mod:`did_core.game_io.bayesian_format`):
:func:`load_game_or_bayesian` reads it, the normal-form readers refuse it.

Every problem with a file raises :class:`GameFormatError` (a ``ValueError``)
whose message is a single line ``"<file>: <problem>"``.

Loaded games are float64 CPU tensors. :func:`save_game` writes ``.json``,
``.npy`` and (payoff-version) ``.nfg`` files atomically.

Modules: ``errors`` (the error class), ``validation`` (in-memory payoffs),
``file_bytes`` (reading a file), one reader per format (``json_format``,
``npy_format``, ``nfg_tokens`` + ``nfg_format``), ``load`` (the suffix
dispatcher) and ``save`` (atomic writing).
"""

from did_core.game_io.errors import GameFormatError
from did_core.game_io.bayesian_format import BayesianLabels
from did_core.game_io.load import SUPPORTED_SUFFIXES, GameLabels, load_game, load_game_or_bayesian, load_labelled_game
from did_core.game_io.nfg_format import parse_nfg
from did_core.game_io.save import save_game
from did_core.game_io.validation import game_from_array, game_from_nested

__all__ = [
    "GameFormatError",
    "SUPPORTED_SUFFIXES",
    "load_game",
    "load_labelled_game",
    "GameLabels",
    "load_game_or_bayesian",
    "BayesianLabels",
    "save_game",
    "game_from_nested",
    "game_from_array",
    "parse_nfg",
]
