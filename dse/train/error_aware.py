"""Error-aware training from a device card's operating point (issue 4, item 5).

``train_ber`` is a number; ``train_operating_point`` instead names the knob values of the
experiment's binary-cell ``device_card`` (e.g. ``{i_prog: 3.0e-5}`` for ``hfo2-2t2r``), and the
bit error rate the card gives there is what the network trains with (bit flips on every training
forward pass, :func:`dse.train.loop.set_train_ber`). The card travels with the experiment (the
train rule's input, ``dse train --card``), so a calibrated card works as a hand-written one.
"""

from __future__ import annotations

from typing import Any

from dse.config import Experiment
from dse.devices import BitErrorModel, from_card
from dse.errors import DseError


def resolve_train_ber(exp: Experiment, cards: dict[str, Any] | None) -> tuple[float, dict | None]:
    """(BER to train with, provenance for ``model.json`` or None): ``train_ber``, or the BER of
    ``device_card`` at ``train_operating_point``."""
    op = exp.train_operating_point
    if not op:
        return float(exp.train_ber), None
    where = f"experiments.{exp.name}"
    if exp.train_ber > 0:
        raise DseError(f"{where}: give train_ber or train_operating_point, not both")
    if exp.precision not in ("binary", "ternary"):
        raise DseError(f"{where}.train_operating_point: bit errors need binary or ternary "
                       f"weights, got precision '{exp.precision}'")
    if exp.device_card is None:
        raise DseError(f"{where}.train_operating_point: name the binary-cell card whose BER it "
                       "sets with device_card (e.g. device_card: hfo2-2t2r)")
    cards = cards or {}
    if exp.device_card not in cards:
        raise DseError(f"{where}: device card '{exp.device_card}' was not loaded (pass its card "
                       "file, e.g. `dse train --card FILE`)")
    model = from_card(cards[exp.device_card], source=f"device card '{exp.device_card}'")
    if not isinstance(model, BitErrorModel):
        raise DseError(f"{where}.train_operating_point: device card '{exp.device_card}' is a "
                       f"{model.family} card, not a binary cell with a bit error rate (use e.g. "
                       "hfo2-2t2r, hfo2-1t1r, pcsa-130nm, stt-mram)")
    try:
        ber = float(model.ber(**op))
    except DseError as exc:
        raise DseError(f"{where}.train_operating_point: {exc}") from None
    if 0.5 < ber <= 0.5 + 1e-9:  # rounding at the chance level
        ber = 0.5
    if not 0.0 <= ber <= 0.5:
        raise DseError(f"{where}.train_operating_point: card '{exp.device_card}' gives BER "
                       f"{ber:g} there, outside [0, 0.5]; choose another operating point")
    return ber, {"device_card": exp.device_card, "operating_point": dict(op), "ber": ber}
