"""The four renderings: well-formed LaTeX, Markdown with the same numbers, CSV and JSON that agree."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from results.aggregate import build_report
from results.published import load_published
from results.render import (
    FORMATS,
    render,
    table_latex,
    table_markdown,
    tex_escape,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
)
from results.runs import collect
from tests.conftest import make_record, write_record

NUMBER = re.compile(r"[+-]?\d+\.\d+")
ODD_LABEL = "my_method 50%{x}&#~^"


@pytest.fixture
def report(tmp_path):
    for seed in range(3):
        write_record(tmp_path, f"m{seed}", make_record("mocov2", 200, seed, ap50=82.0 + 0.2 * seed, ap=57.0))
        write_record(tmp_path, f"s{seed}", make_record("synco", 200, seed, ap50=82.5 + 0.2 * seed, ap=57.1 + seed / 10))
        write_record(tmp_path, f"c{seed}", make_record("synco", 200, seed, task="coco1x", ap=40.0 + seed / 10))
    write_record(tmp_path, "odd", make_record(ODD_LABEL, None, 0))
    write_record(tmp_path, "off", make_record("synco", 200, 9, protocol_deviations={
        "SOLVER.MAX_ITER": {"expected": 24000, "actual": 100}}))
    write_record(tmp_path, "broken", "[1, 2")
    return build_report(collect([tmp_path]), published=load_published())


def _unescaped(pattern: str) -> re.Pattern:
    return re.compile(r"(?<!\\)" + pattern)


def _check_latex(tex: str) -> None:
    lines = [line for line in tex.splitlines() if not line.startswith("%")]
    body = "\n".join(lines)
    assert not _unescaped("%").search(body), "unescaped % outside comments"
    depth = 0
    for ch in re.sub(r"\\[{}]", "", body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "closing brace without opening"
    assert depth == 0, "unbalanced braces"
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", body):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} does not match"
    assert not stack, f"unclosed environments {stack}"
    for line in lines:
        assert len(_unescaped(r"\$").findall(line)) % 2 == 0, f"unbalanced $ in {line!r}"
        text_only = re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", line)
        assert not _unescaped("_").search(text_only), f"unescaped _ outside math in {line!r}"
    assert "\\hline" not in body
    for tabular in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", body, re.S):
        spec, content = tabular
        rules = re.findall(r"\\(toprule|midrule|bottomrule)", content)
        assert rules[0] == "toprule" and rules[-1] == "bottomrule" and "midrule" in rules
        assert rules.count("toprule") == 1 and rules.count("bottomrule") == 1
        for row in (r for r in content.splitlines() if r.endswith("\\\\")):
            assert len(_unescaped("&").findall(row)) == len(spec) - 1, f"wrong cell count in {row!r}"


def test_latex_is_well_formed(report):
    tex = to_latex(report)
    _check_latex(tex)
    assert tex.count("\\begin{table}") == 2
    voc = tex.split("\\begin{tabular}")[1]
    # header rule, then a rule between reproduced and reported rows
    assert re.findall(r"\\(toprule|midrule|bottomrule)", voc) == ["toprule", "midrule", "midrule", "bottomrule"]
    assert tex_escape(ODD_LABEL) in tex and "my\\_method 50\\%" in tex
    assert "% skipped:" in tex and "broken" in tex


def test_the_checker_catches_broken_latex():
    with pytest.raises(AssertionError):
        _check_latex("\\begin{table}\\begin{tabular}{ll}\\toprule a & b\\\\\\bottomrule\\end{tabular}")
    with pytest.raises(AssertionError):
        _check_latex("\\begin{table} a_b 5% \\end{table}")


def _md_rows(md: str) -> dict[tuple[str, str, str], list[str]]:
    """(task, label, source) -> cells of each Markdown table row."""
    rows, task = {}, None
    for line in md.splitlines():
        if line.startswith("### "):
            task = line[4:].split(":")[0]
        elif line.startswith("| ") and not line.startswith(("| method", "| run record")):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[(task, cells[0].replace("\\|", "|"), cells[1])] = cells
    return rows


def test_markdown_and_latex_show_the_same_numbers(report):
    md, tex = to_markdown(report), to_latex(report)
    tex_rows = [line for line in tex.splitlines() if line.endswith("\\\\") and "reproduced" in line]
    md_rows = [line for line in md.splitlines() if "| reproduced |" in line]
    assert len(md_rows) == len(tex_rows) == 5
    for md_line, tex_line in zip(md_rows, tex_rows):
        assert NUMBER.findall(md_line) == NUMBER.findall(tex_line)


def test_markdown_matches_the_json_numbers(report):
    md = to_markdown(report)
    doc = json.loads(to_json(report))
    rows = _md_rows(md)
    checked = 0
    for table in doc["tables"]:
        for row in table["rows"]:
            if row["kind"] != "reproduced":
                continue
            cells = rows[(table["task"], row["label"], "reproduced")]
            assert cells[2] == str(row["n"])
            for col in table["columns"]:
                cell = row["cells"][col["id"]]
                std = "–" if cell["std"] is None else f"{cell['std']:.2f}"
                assert f"{cell['mean']:.2f} ± {std}" in cells
                checked += 1
    assert checked == 4 * 3 + 6  # four VOC rows, one COCO row
    synco = rows[("voc", "synco-200ep", "reproduced")]
    assert "+0.50 [+0.05, +0.95]" in synco[4]  # AP50: Δ with its Welch CI, outside noise: no mark
    assert synco[6].endswith("≈")  # AP: within noise
    assert rows[("voc", ODD_LABEL, "reproduced")][0] == ODD_LABEL


def test_markdown_tables_are_rectangular_and_list_skips(report):
    md = to_markdown(report)
    blocks = re.findall(r"(?:^\|.*\n)+", md, re.M)
    assert len(blocks) == 3  # voc, coco1x, skipped
    for block in blocks:
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in block.splitlines()}
        assert len(widths) == 1, block
    assert "### Skipped runs (1)" in md and "not valid JSON" in md
    assert "reported [1]" in md and "facebookresearch/moco detection/README.md" in md
    assert "within noise (≈) when its 95% Welch CI contains 0" in md


def test_csv_is_long_format_and_agrees_with_json(report):
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    doc = json.loads(to_json(report))
    voc = doc["tables"][0]
    synco = next(r for r in voc["rows"] if r["label"] == "synco-200ep" and r["kind"] == "reproduced")
    line = next(r for r in rows if r["label"] == "synco-200ep" and r["metric"] == "bbox.AP50"
                and r["kind"] == "reproduced" and r["task"] == "voc")
    assert float(line["mean"]) == synco["cells"]["bbox.AP50"]["mean"]
    assert float(line["ci_low"]) == synco["cells"]["bbox.AP50"]["ci_low"]
    assert line["within_noise"] == "False" and line["seeds"] == "0 1 2"
    assert any(r["kind"] == "reported" and r["reported_value"] == "82.6" for r in rows)
    assert doc["skipped"][0]["reason"].startswith("corrupt")


def test_every_format_renders_and_unknown_formats_fail(report):
    for fmt in FORMATS:
        assert render(report, fmt).strip()
    with pytest.raises(ValueError):
        render(report, "xml")


@pytest.fixture
def small_report(tmp_path):
    """Two methods over three seeds and a one-seed run: every kind of measured cell, with and without a CI."""
    for seed in range(3):
        write_record(tmp_path, f"m{seed}", make_record("mocov2", 200, seed, ap50=82.0 + 0.2 * seed, ap=57.0,
                                                       ap75=63.0 + 0.3 * seed))
        write_record(tmp_path, f"s{seed}", make_record("synco", 200, seed, ap50=82.5 + 0.2 * seed, ap=57.1 + seed / 10))
    write_record(tmp_path, "b", make_record("byol", 300, 0, ap50=80.0))
    return build_report(collect([tmp_path]), published=None)


PINNED_MD = """\
| method | source | n | AP50 | Δ AP50 | AP | Δ AP | AP75 | Δ AP75 |
|:--|:--|--:|--:|--:|--:|--:|--:|--:|
| mocov2-200ep | reproduced | 3 | 82.20 ± 0.20 | baseline | 57.00 ± 0.00 | baseline | 63.30 ± 0.30 | baseline |
| byol-300ep | reproduced | 1 | 80.00 ± – | -2.20 | 57.00 ± – | +0.00 ≈ | 63.00 ± – | -0.30 ≈ |
| synco-200ep | reproduced | 3 | 82.70 ± 0.20 | +0.50 [+0.05, +0.95] | 57.20 ± 0.10 | +0.20 [-0.05, +0.45] ≈ \
| 63.00 ± 0.00 | -0.30 [-1.05, +0.45] ≈ |
"""

PINNED_TEX = r"""\begin{tabular}{llrrrrrrr}
\toprule
method & source & $n$ & AP$_{50}$ & $\Delta$ & AP & $\Delta$ & AP$_{75}$ & $\Delta$ \\
\midrule
mocov2-200ep & reproduced & 3 & $82.20$\,{\scriptsize$\pm$ $0.20$} & base & $57.00$\,{\scriptsize$\pm$ $0.00$} & base & $63.30$\,{\scriptsize$\pm$ $0.30$} & base \\
byol-300ep & reproduced & 1 & $80.00$\,{\scriptsize$\pm$ --} & $-2.20$ & $57.00$\,{\scriptsize$\pm$ --} & $+0.00$\,$\approx$ & $63.00$\,{\scriptsize$\pm$ --} & $-0.30$\,$\approx$ \\
synco-200ep & reproduced & 3 & $82.70$\,{\scriptsize$\pm$ $0.20$} & $+0.50$\,{\scriptsize$[+0.05, +0.95]$} & $57.20$\,{\scriptsize$\pm$ $0.10$} & $+0.20$\,{\scriptsize$[-0.05, +0.45]$}\,$\approx$ & $63.00$\,{\scriptsize$\pm$ $0.00$} & $-0.30$\,{\scriptsize$[-1.05, +0.45]$}\,$\approx$ \\
\bottomrule
\end{tabular}
"""  # noqa: E501 - a table row is one line


def test_markdown_and_latex_grids_are_pinned(small_report):
    """Both formats share one grid (header, row order, Δ placement); pin each byte of it."""
    md = table_markdown(small_report.tables[0], small_report.baseline)
    assert md[md.index("| method"):md.index("\n\n", md.index("| method")) + 1] == PINNED_MD
    tex = table_latex(small_report.tables[0], small_report.baseline)
    assert tex[tex.index("\\begin{tabular}"):tex.index("\\end{tabular}") + len("\\end{tabular}\n")] == PINNED_TEX


@pytest.mark.usefixtures("small_report")  # for its records in tmp_path
def test_without_a_baseline_there_are_no_delta_columns(tmp_path):
    report = build_report(collect([tmp_path]), baseline="nothing-1ep", published=None)
    md, tex = table_markdown(report.tables[0], "nothing-1ep"), table_latex(report.tables[0], "nothing-1ep")
    assert "| method | source | n | AP50 | AP | AP75 |\n|:--|:--|--:|--:|--:|--:|\n" in md
    assert "\\begin{tabular}{llrrrr}\n\\toprule\nmethod & source & $n$ & AP$_{50}$ & AP & AP$_{75}$ \\\\\n" in tex
    assert "| byol-300ep | reproduced | 1 | 80.00 ± – | 57.00 ± – | 63.00 ± – |" in md
