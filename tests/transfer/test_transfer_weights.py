"""The weights the ``synco transfer`` tests train from (the ``r50_pkl`` fixture) are what they claim."""

from __future__ import annotations

from transfer.convert.api import load_input_settings


def test_fixture_weights_are_a_resnet50(r50_pkl):
    settings = load_input_settings(r50_pkl)
    assert settings["MODEL.RESNETS.DEPTH"] == 50 and settings["INPUT.FORMAT"] == "RGB"
