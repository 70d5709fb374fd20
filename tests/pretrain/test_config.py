"""Pretraining settings: presets, ``key=value`` overrides, the synthesis node, one-sentence errors, the stored form."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from synco.common.errors import UserError
from synco.common.resources import shipped_names
from synco.pretrain.config import PretrainConfig, SynthesisConfig, config_from_dict, load_config


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
    assert cfg.method in name and isinstance(cfg.synthesis, SynthesisConfig) and cfg.synthesis.n_hard >= 1


def test_a_preset_sets_what_it_names_and_keeps_the_other_defaults():
    cfg = load_config("toy_synco")
    assert (cfg.method, cfg.epochs, cfg.batch_size, cfg.lr, cfg.image_size) == ("synco", 2, 32, 0.24, 32)
    assert (cfg.temperature, cfg.momentum, cfg.knn_every) == (0.07, 0.99, 1)
    assert cfg.dim == PretrainConfig().dim and cfg.lr_schedule == "cosine"
    # the file's synthesis block, and SynCo's preset for the fields it leaves out
    assert (cfg.synthesis.n_hard, cfg.synthesis.n_noise, cfg.synthesis.warmup_epochs) == (128, 8, 1)
    assert (cfg.synthesis.sigma, cfg.synthesis.beta_range) == (SynthesisConfig().sigma, SynthesisConfig().beta_range)
    assert load_config() == PretrainConfig()


@pytest.mark.parametrize("method", ["mocov2", "mochi", "synco"])
def test_the_synthesis_node_defaults_to_the_methods_preset(method):
    preset = {"mocov2": SynthesisConfig.mocov2(), "mochi": SynthesisConfig.mochi(), "synco": SynthesisConfig()}[method]
    assert load_config(f"{method}_200ep").synthesis == preset
    assert PretrainConfig(method=method).synthesis == preset  # built directly: the same
    # the method decides the fields nobody gave, whichever source set it (here an override after the preset)
    tuned = load_config("toy_mocov2", ["synthesis.warmup_epochs=3", f"method={method}"]).synthesis
    assert tuned == SynthesisConfig(**{**preset.to_dict(), "warmup_epochs": 3})


def test_overrides_set_top_level_and_synthesis_fields():
    cfg = load_config("toy_synco", ["epochs=7", "amp=true", "data=/x/y", "synthesis.n_hard=64",
                                    "synthesis.alpha_range=[0.1, 0.3]", "synthesis.sigma=0.5"])
    assert (cfg.epochs, cfg.amp, cfg.data) == (7, True, "/x/y")
    synth = cfg.synthesis
    assert (synth.n_hard, synth.alpha_range, synth.sigma, synth.n_interpolated) == (64, (0.1, 0.3), 0.5, 32)
    assert load_config("toy_synco", ["epochs=7", "epochs=9"]).epochs == 9


def test_floats_written_without_a_dot_are_numbers(tmp_path):
    cfg = load_config("toy_synco", ["lr=1e-4", "weight_decay=1e30", "synthesis.sigma=1e-4"])
    assert cfg.lr == 1e-4 and cfg.weight_decay == 1e30
    assert cfg.synthesis.sigma == 1e-4
    path = tmp_path / "mine.yaml"
    path.write_text("lr: 1e-4\nsynthesis: {eta: 1e-3}\n")
    cfg = load_config(str(path))
    assert cfg.lr == 1e-4 and cfg.synthesis.eta == 1e-3


@pytest.mark.parametrize("override, fragments", [
    ("batch_size=2.5", ("setting batch_size must be a whole number", "2.5")),
    ("synthesis.n_hard=2.5", ("setting synthesis.n_hard must be a whole number",)),
    ("epochs=abc", ("setting epochs must be a number", "'abc'")),
    ("lr=fast", ("setting lr must be a number",)),
    ("synthesis.alpha_range=[a, 1]", ("synthesis.alpha_range[0] must be a number",)),
    ("amp=1", ("setting amp must be true or false",)),
    ("amp=maybe", ("setting amp must be true or false",)),
    ("synthesis=5", ("setting synthesis must be a mapping",)),
    ("synthesis=null", ("setting synthesis must be a mapping", "None")),
    ("synthesis.n_hard=null", ("setting synthesis.n_hard must be a number, got None",)),
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


@pytest.mark.parametrize("override, fragments", [
    ("synthesis.n_hard=0", ("bad synthesis settings: n_hard must be at least 1, got 0.",)),
    ("synthesis.n_mixed=-1", ("synthetic negative counts must be >= 0",)),
    ("synthesis.alpha_range=[0.5, 0.1]", ("alpha_range must be (low, high) with low <= high",)),
    ("synthesis.beta_range=[1.2]", ("beta_range must be a pair (low, high), got [1.2]",)),
    ("method=mocov2", ("method mocov2 does not use interpolated, extrapolated", "use method=synco")),
    ("method=byol", ("unknown method 'byol'; choose one of mocov2, mochi, synco",)),
])
def test_synthesis_values_are_checked_at_load(override, fragments):
    _refused(*fragments, overrides=(override,))  # toy_synco's synthesis block, so method=mocov2 is refused


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


def test_the_stored_form_holds_every_synthesis_value(tmp_path):
    stored = load_config("toy_mocov2").to_dict()["synthesis"]
    assert stored == SynthesisConfig.mocov2().to_dict() and stored["alpha_range"] == [0.0, 0.5]
    cfg = load_config("toy_mochi", ["synthesis.beta_range=[1.1, 1.2]"])
    printed = tmp_path / "printed.yaml"  # what --print-config writes, used as a preset
    printed.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    assert load_config(str(printed)) == cfg


@pytest.mark.parametrize("preset, overrides, old", [
    ("toy_mocov2", [], {}),
    ("toy_mocov2", ["synthesis.warmup_epochs=2"], {"warmup_epochs": 2}),
    ("mochi_200ep", ["synthesis.gamma_range=[0.2, 0.4]"], {"gamma_range": [0.2, 0.4]}),
    ("toy_synco", [], {"n_hard": 128, "n_interpolated": 32, "n_extrapolated": 32, "n_mixed": 32, "n_noise": 8,
                       "n_perturbed": 8, "n_adversarial": 8, "warmup_epochs": 1}),
])
def test_a_config_stored_before_the_synthesis_node_loads_to_the_same_settings(preset, overrides, old):
    """Checkpoints written before issue 20 store only the synthesis fields a run overrode ({} for none);
    they must resume with exactly the values they trained with."""
    cfg = load_config(preset, overrides)
    assert config_from_dict({**cfg.to_dict(), "synthesis": old}) == cfg


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
    with pytest.raises(UserError, match="mocov2 does not use noise negatives"):
        PretrainConfig(method="mocov2", synthesis=dataclasses.replace(SynthesisConfig.mocov2(), n_noise=4))
    with pytest.raises(UserError, match="mochi does not use extrapolated"):
        PretrainConfig(method="mochi", synthesis=SynthesisConfig())
    with pytest.raises(UserError, match="unknown method 'byol'"):
        PretrainConfig(method="byol")
    with pytest.raises(ValueError, match="n_hard must be at least 1"):
        SynthesisConfig(n_hard=0)
    assert SynthesisConfig(alpha_range=[0.1, 0.2]).alpha_range == (0.1, 0.2)  # a pair, stored as a tuple
