"""The YAML files shipped inside the package (``synco/configs/``), found without a source checkout.

Why not ``Path(__file__).parent.parent / "configs"``: that only works in an
editable install. The configs are package data, located through
``importlib.resources`` so that ``pip install .`` (or a wheel) finds them
from any working directory. Four kinds live there: ``pretrain`` presets,
``detectron2`` and ``classification`` task configs, and ``experiments`` grids.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from synco.common.errors import UserError

KINDS = ("pretrain", "detectron2", "classification", "experiments")


def config_dir(kind: str) -> Path:
    """The folder of shipped ``kind`` configs, as a real path (detectron2 resolves ``_BASE_`` relative to it)."""
    if kind not in KINDS:
        raise ValueError(f"unknown config kind {kind!r}; kinds: {', '.join(KINDS)}")
    return Path(str(files("synco").joinpath("configs", kind)))


def read_text_file(path: Path, what: str) -> str:
    """``path``'s text as UTF-8, or one sentence saying why it cannot be read (a folder, no permission, binary)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} file {path} is not UTF-8 text (byte {exc.start} cannot be decoded); "
                        "is it the right file?") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror or exc}.") from None


def shipped_names(kind: str) -> list[str]:
    """Names (file stems) of the shipped configs of one kind, sorted."""
    return sorted(path.stem for path in config_dir(kind).glob("*.yaml"))


def resolve_config(kind: str, name: str | Path, what: str = "preset") -> Path:
    """A YAML file given as a path, or the shipped config of that name.

    ``what`` names the thing in the error message ("preset", "experiment").
    """
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if path.is_dir():
            raise UserError(f"{what} file {path} is a folder; give the YAML file itself.")
        if not path.is_file():
            raise UserError(f"{what} file {path} does not exist.")
        return path
    candidate = config_dir(kind) / f"{name}.yaml"
    if not candidate.is_file():
        # shipped files use underscores (toy_signal.yaml); commands read better with dashes (toy-signal)
        candidate = config_dir(kind) / f"{str(name).replace('-', '_')}.yaml"
    if not candidate.is_file():
        raise UserError(f"unknown {what} {str(name)!r}; {what}s: {', '.join(shipped_names(kind))}.")
    return candidate
