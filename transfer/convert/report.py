"""What a conversion did, as data (for the API and ``--json``) and as text (for people).

The report exists so that a converted checkpoint can be trusted without
re-reading the converter: it states how many backbone tensors were mapped out
of how many the architecture has, and names everything that was left behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DroppedGroup:
    """Tensors left out of the output, grouped by the name prefix that explains them."""

    pattern: str
    count: int
    reason: str


@dataclass
class ConversionReport:
    """Outcome of one successful conversion (failures raise ``UserError`` instead)."""

    input_path: str
    input_sha256: str
    format: str
    format_description: str
    arch: str
    block: str
    mapped: int
    expected: int
    output_kind: str
    output_path: str | None = None
    sidecar_path: str | None = None
    container: str = ""
    dropped: list[DroppedGroup] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    ignored_entries: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    input_style: str = ""  # where the input settings come from (recorded by the file, or stated by the user)

    @property
    def coverage(self) -> float:
        return self.mapped / self.expected if self.expected else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["coverage"] = self.coverage
        return data

    def to_text(self) -> str:
        lines = [
            f"input:    {self.input_path}",
            f"sha256:   {self.input_sha256}",
            f"format:   {self.format} ({self.format_description})",
        ]
        if self.container:
            lines.append(f"weights:  {self.container}")
        lines += [
            f"arch:     {self.arch} ({self.block} blocks)",
            f"coverage: {self.mapped}/{self.expected} backbone tensors mapped ({self.coverage:.0%})",
        ]
        if self.dropped:
            lines.append("dropped:")
            width = max(len(group.pattern) for group in self.dropped)
            for group in self.dropped:
                noun = "tensor" if group.count == 1 else "tensors"
                lines.append(f"  {group.pattern:<{width}} ({group.count} {noun}): {group.reason}")
        else:
            lines.append("dropped:  nothing")
        for note in self.filled:
            lines.append(f"filled:   {note}")
        if self.ignored_entries:
            lines.append(f"ignored:  other top-level entries: {', '.join(self.ignored_entries)}")
        if self.output_path:
            lines.append(f"output:   {self.output_path} ({self.output_kind})")
        else:
            lines.append(f"output:   none written (dry run; would be {self.output_kind})")
        if self.sidecar_path:
            lines.append(f"settings: {self.sidecar_path}")
        if self.input_style:
            lines.append(f"input style: {self.input_style}")
        for key, value in self.settings.items():
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)
