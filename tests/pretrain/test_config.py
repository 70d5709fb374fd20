"""Pretraining settings: presets, ``key=value`` overrides, one-sentence errors, the stored form."""

from __future__ import annotations

import pytest
import yaml

from synco.common.errors import UserError
from synco.common.resources import shipped_names
from synco.pretrain.config import PretrainConfig, config_from_dict, load_config


def _refused(*fragments: str, preset: str | None = "toy_synco", overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(UserError) as exc:
        load_config(preset, list(overrides))
    message = str(exc.value)
    assert len(message.splitlines()) == 1 and "full_key" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("name", shipped_names("pretrain"))
def test_every_shipped_preset_loads_and_validates(name):
    cfg = load_config(name)
    cfg.validate()
    assert cfg.method in name and cfg.synthesis_config().n_hard >= 1


def test_a_preset_sets_what_it_names_and_keeps_the_other_defaults():
    cfg = load_config("toy_synco")
    assert (cfg.method, cfg.epochs, cfg.batch_size, cfg.lr, cfg.image_size) == ("synco", 2, 32, 0.24, 32)
    assert (cfg.temperature, cfg.momentum, cfg.knn_every) == (0.07, 0.99, 1)
    assert cfg.dim == PretrainConfig().dim and cfg.lr_schedule == "cosine"
    assert list(cfg.synthesis)[:2] == ["n_hard", "n_interpolated"]  # the file's order, for --print-config
    assert load_config() == PretrainConfig()


def test_overrides_set_top_level_and_synthesis_fields():
    cfg = load_config("toy_synco", ["epochs=7", "amp=true", "data=/x/y", "synthesis.n_hard=64",
                                    "synthesis.alpha_range=[0.1, 0.3]", "synthesis.sigma=0.5"])
    assert (cfg.epochs, cfg.amp, cfg.data) == (7, True, "/x/y")
    synth = cfg.synthesis_config()
    assert (synth.n_hard, synth.alpha_range, synth.sigma, synth.n_interpolated) == (64, (0.1, 0.3), 0.5, 32)
    assert load_config("toy_synco", ["epochs=7", "epochs=9"]).epochs == 9


def test_floats_written_without_a_dot_are_numbers(tmp_path):
    cfg = load_config("toy_synco", ["lr=1e-4", "weight_decay=1e30", "synthesis.sigma=1e-4"])
    assert cfg.lr == 1e-4 and cfg.weight_decay == 1e30
    assert cfg.synthesis["sigma"] == 1e-4 and cfg.synthesis_config().sigma == 1e-4
    path = tmp_path / "mine.yaml"
    path.write_text("lr: 1e-4\nsynthesis: {eta: 1e-3}\n")
    cfg = load_config(str(path))
    assert cfg.lr == 1e-4 and cfg.synthesis == {"eta": 1e-3}


@pytest.mark.parametrize("override, fragments", [
    ("batch_size=2.5", ("setting batch_size must be a whole number", "2.5")),
    ("synthesis.n_hard=2.5", ("setting synthesis.n_hard must be a whole number",)),
    ("epochs=abc", ("setting epochs must be a number", "'abc'")),
    ("lr=fast", ("setting lr must be a number",)),
    ("synthesis.alpha_range=[a, 1]", ("synthesis.alpha_range[0] must be a number",)),
    ("amp=1", ("setting amp must be true or false",)),
    ("amp=maybe", ("setting amp must be true or false",)),
    ("synthesis=5", ("setting synthesis must be a mapping",)),
])
def test_a_value_of_the_wrong_type_is_refused_in_one_sentence(override, fragments):
    _refused(*fragments, overrides=(override,))


@pytest.mark.parametrize("override, fragments", [
    ("nosuch=1", ("unknown setting 'nosuch'", "known: amp, arch")),
    ("synthesis.nosuch=1", ("unknown setting 'synthesis.nosuch'", "known: alpha_range")),
    ("epochs", ("override 'epochs' is not KEY=VALUE",)),
    ("=3", ("is not KEY=VALUE",)),
])
def test_unknown_settings_and_malformed_overrides_are_refused(override, fragments):
    _refused(*fragments, overrides=(override,))


def test_bad_preset_files_name_the_file(tmp_path):
    _refused("unknown preset 'byol_200ep'", preset="byol_200ep")
    bad = tmp_path / "bad.yaml"
    for text, fragment in [("epochs: 3\nbogus: 1\n", "unknown setting 'bogus'"),
                           ("epochs: 2.5\n", "setting epochs must be a whole number"),
                           ("synthesis: {n_hard: x}\n", "setting synthesis.n_hard must be a number"),
                           ("epochs: [1\n", "is not valid YAML"),
                           ("- 1\n", "must be a mapping of settings")]:
        bad.write_text(text)
        assert str(bad) in _refused(fragment, preset=str(bad))


def test_the_stored_form_round_trips_through_config_from_dict():
    cfg = load_config("synco_200ep", ["synthesis.sigma=1e-4", "synthesis.n_hard=512", "lr=1e-4", "amp=true"])
    stored = cfg.to_dict()
    assert isinstance(stored["synthesis"], dict) and stored["synthesis"]["sigma"] == 1e-4
    assert yaml.safe_load(yaml.safe_dump(stored)) == stored  # plain data, as checkpoints need
    assert config_from_dict(stored) == cfg
    resumed = config_from_dict({**stored, "data": "/elsewhere", "epochs": 400})  # train.py's resume
    assert (resumed.data, resumed.epochs, resumed.synthesis) == ("/elsewhere", 400, cfg.synthesis)


def test_no_synthesis_overrides_store_an_empty_dict():
    cfg = load_config("toy_mocov2")
    assert cfg.to_dict()["synthesis"] == {}
    assert config_from_dict(cfg.to_dict()).to_dict()["synthesis"] == {}
    only = load_config("toy_mocov2", ["synthesis.warmup_epochs=2"]).to_dict()["synthesis"]
    assert only == {"warmup_epochs": 2}  # only what was overridden, not the method's defaults


def test_a_checkpoint_config_from_another_version_is_refused():
    stored = load_config("toy_synco").to_dict()
    for bad, fragment in [({**stored, "colour": "red"}, "unknown setting 'colour'"),
                          ({**stored, "epochs": "many"}, "setting epochs must be a number"),
                          ({**stored, "synthesis": {"n_fancy": 3}}, "unknown setting 'synthesis.n_fancy'")]:
        with pytest.raises(UserError, match="does not fit this version") as exc:
            config_from_dict(bad)
        assert fragment in str(exc.value) and len(str(exc.value).splitlines()) == 1
    old = {key: value for key, value in stored.items() if key != "max_steps_per_epoch"}  # a field added later
    assert config_from_dict(old).max_steps_per_epoch == 0


def test_a_config_built_directly_is_still_checked():
    with pytest.raises(UserError, match="unknown setting 'synthesis.nosuch'"):
        PretrainConfig(synthesis={"nosuch": 1}).synthesis_config()
    with pytest.raises(UserError, match="mocov2 does not use"):
        PretrainConfig(method="mocov2", synthesis={"n_noise": 4}).synthesis_config()
    assert PretrainConfig(synthesis={"alpha_range": (0.1, 0.2)}).synthesis_config().alpha_range == (0.1, 0.2)
