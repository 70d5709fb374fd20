"""``results/published.csv`` holds exactly the agreed numbers, each with its source, and loads strictly."""

from __future__ import annotations

import pandas as pd
import pytest

from results.aggregate import build_report, collect
from results.published import (
    COLUMNS,
    SHOWN_VERSIONS,
    PublishedError,
    load_published,
    parse_published,
    published_for_task,
    published_for_tasks,
)
from results.render import to_latex, to_markdown
from synco.cli import main
from tests.conftest import make_record, write_record
from tests.results.conftest import classification_record

MOCO_DET = "facebookresearch/moco detection/README.md"
SYNCO_DET = "giakoumoglou/synco detection/README.md"
VOC_ROWS = {  # (method, epochs): (AP50, AP, AP75, source)
    ("supervised", None): (81.3, 53.5, 58.8, MOCO_DET),
    ("mocov1", 200): (81.5, 55.9, 62.6, MOCO_DET),
    ("mocov2", 200): (82.4, 57.0, 63.6, MOCO_DET),
    ("mocov2", 800): (82.5, 57.4, 64.0, MOCO_DET),
    ("synco", 200): (82.6, 57.2, 63.9, SYNCO_DET),
    ("synco", 800): (82.8, 57.4, 64.0, SYNCO_DET),
}


def _expected() -> set[tuple]:
    rows = set()
    for (method, epochs), (ap50, ap, ap75, source) in VOC_ROWS.items():
        for metric, value in (("bbox.AP50", ap50), ("bbox.AP", ap), ("bbox.AP75", ap75)):
            rows.add((method, epochs, "voc", metric, value, "absolute", source))
    moco, synco = "facebookresearch/moco README.md", "giakoumoglou/synco README.md"
    rows |= {
        ("mocov1", 200, "imagenet-linear", "linear.top1", 60.8, "absolute", moco),
        ("mocov2", 200, "imagenet-linear", "linear.top1", 67.5, "absolute", moco),
        ("mocov2", 800, "imagenet-linear", "linear.top1", 71.1, "absolute", moco),
        ("synco", 200, "imagenet-linear", "linear.top1", 68.1, "absolute", synco),
        ("synco", 800, "imagenet-linear", "linear.top1", 70.7, "absolute", synco),
        ("synco", 200, "imagenet-linear", "linear.top1", 67.9, "absolute", "arXiv 2410.02401v3 abstract"),
        ("synco", 200, "imagenet-linear", "linear.top1", 67.9, "absolute", "arXiv 2410.02401v4 abstract"),
    }  # no semi-supervised, kNN or MoCHI rows: see results/published.py (only the papers' openings were readable)
    for version, bb, mk in (("v1", 40.4, 35.4), ("v3", 41.0, 35.7), ("v4", 40.9, 35.5)):
        source = f"arXiv 2410.02401{version} abstract"
        rows |= {("synco", None, "coco", "bbox.AP", bb, "absolute", source),
                 ("synco", None, "coco", "segm.AP", mk, "absolute", source)}
    rows |= {("synco", None, "coco", "bbox.AP", 1.0, "delta_vs_mocov2", "arXiv 2410.02401v7 abstract"),
             ("synco", None, "coco", "segm.AP", 0.8, "delta_vs_mocov2", "arXiv 2410.02401v7 abstract")}
    rows |= {("synco", None, "voc", "bbox.AP50", 82.6, "absolute", "arXiv 2410.02401v3 abstract"),
             ("synco", None, "voc", "bbox.AP", 57.2, "absolute", "arXiv 2410.02401v7 abstract"),
             ("synco", None, "imagenet-linear", "linear.top1", 0.4, "delta_vs_mocov2", "arXiv 2410.02401v7 abstract"),
             ("synco", None, "imagenet-linear", "linear.top1", 1.0, "delta_vs_mochi", "arXiv 2410.02401v7 abstract")}
    return rows


def test_csv_holds_exactly_the_agreed_numbers():
    frame = load_published()
    got = {(r["method"], None if pd.isna(r["pretrain_epochs"]) else int(r["pretrain_epochs"]), r["task"],
            r["metric"], r["value"], r["kind"], r["source"]) for r in frame.to_dict("records")}
    assert got == _expected()
    assert len(frame) == len(_expected())


def test_caveats_are_in_the_notes():
    frame = load_published()
    notes = {(r.method, r.pretrain_epochs, r.task, r.metric, r.source): r.notes for r in frame.itertuples()}
    assert "82.5 before a 2024-10-06 update" in notes[("synco", 200, "voc", "bbox.AP50", SYNCO_DET)]
    linear = {key[0:2]: note for key, note in notes.items() if key[2] == "imagenet-linear" and "README" in key[4]}
    assert "67.7/67.6/67.4/67.6/67.3" in linear[("mocov2", 200)]
    assert "60.6/60.6/60.7/60.9/61.1" in linear[("mocov1", 200)]
    assert "released 800-epoch checkpoint" in linear[("mocov2", 800)]
    assert "72.1 (b7c6907, 2024-08-22) and 70.6 (c778b25" in linear[("synco", 800)]
    assert "number of trials not stated" in linear[("synco", 200)]
    coco = frame[frame["task"] == "coco"]
    assert coco["notes"].str.contains("schedule").all() and coco["version"].tolist() == ["v1"] * 2 + ["v3"] * 2 + [
        "v4"] * 2 + ["v7"] * 2
    assert (frame["source"].str.len() > 0).all() and (frame["version"].str.len() > 0).all()


def test_published_rows_are_matched_to_tasks():
    frame = load_published()
    assert set(published_for_task(frame, "voc")["task"]) == {"voc"}
    assert set(published_for_task(frame, "coco1x")["task"]) == {"coco"}
    assert set(published_for_task(frame, "coco2x")["task"]) == {"coco"}
    assert set(published_for_task(frame, "linear")["metric"]) == {"linear.top1"}
    for task in ("voc12k", "toy-voc", "toy-coco", "semisup1", "semisup10", "knn", "toy-linear", "toy-knn"):
        assert published_for_task(frame, task).empty


HEADER = ",".join(COLUMNS)


@pytest.mark.parametrize("line, message", [
    ("synco,200,voc,bbox.AP,57.2,absolute,,src,v1,", None),
    ("synco,200,mnist,bbox.AP,57.2,absolute,,src,v1,", "unknown task"),
    ("synco,200,voc,segm.AP,57.2,absolute,,src,v1,", "does not belong"),
    ("synco,200,imagenet-linear,top1,68.1,absolute,,src,v1,", "does not belong"),  # the column id is linear.top1
    ("synco,200,imagenet-semisup1,semisup.top1,57.2,absolute,,src,v1,", None),
    ("synco,200,imagenet-knn,knn.top1_k20,57.2,absolute,,src,v1,", None),
    ("synco,200,voc,bbox.AP,high,absolute,,src,v1,", "not a number"),
    ("synco,200,voc,bbox.AP,57.2,relative,,src,v1,", "kind"),
    ("synco,200,voc,bbox.AP,57.2,absolute,,,v1,", "source"),
    ("synco,two,voc,bbox.AP,57.2,absolute,,src,v1,", "not an integer"),
    ("synco,200,voc,bbox.AP,57.2,absolute,,src", "wrong number of fields"),
])
def test_malformed_csv_is_rejected(line, message):
    if message is None:
        assert parse_published(f"{HEADER}\n{line}\n").iloc[0]["value_text"] == "57.2"
        return
    with pytest.raises(PublishedError, match=message):
        parse_published(f"{HEADER}\n{line}\n")


def test_duplicates_and_wrong_header_are_rejected():
    line = "synco,200,voc,bbox.AP,57.2,absolute,,src,v1,"
    with pytest.raises(PublishedError, match="duplicate"):
        parse_published(f"{HEADER}\n{line}\n{line}\n")
    with pytest.raises(PublishedError, match="columns"):
        parse_published("method,value\nsynco,1\n")


def test_a_row_without_a_source_or_version_is_named_in_one_sentence():
    for line, missing in (("synco,200,voc,bbox.AP,57.2,absolute,,,v1,", "source"),
                          ("synco,200,voc,bbox.AP,57.2,absolute,,src,,", "version")):
        with pytest.raises(PublishedError) as caught:
            parse_published(f"{HEADER}\nmocov2,200,voc,bbox.AP,57.0,absolute,,src,v1,\n{line}\n", origin="mine.csv")
        message = str(caught.value)
        assert message.startswith(f"mine.csv line 3 (synco voc bbox.AP) has no {missing}:")
        assert "\n" not in message and message.count(". ") == 0  # one sentence, naming the row


def test_shown_versions_name_versions_the_csv_has():
    frame = load_published()
    for paper, version in SHOWN_VERSIONS.items():
        rows = frame[frame["source"].str.startswith(paper)]
        assert version in set(rows["version"]) and len(set(rows["version"])) > 1


DISAGREEING = f"""{HEADER}
synco,,coco,bbox.AP,40.4,absolute,,arXiv 2410.02401v1 abstract,v1,schedule not stated
synco,,coco,bbox.AP,41.0,absolute,,arXiv 2410.02401v3 abstract,v3,schedule not stated
synco,,coco,bbox.AP,1.0,delta_vs_mocov2,,arXiv 2410.02401v7 abstract,v7,relative claim
mocov2,200,coco,bbox.AP,38.9,absolute,,some other paper,v1,
mocov2,200,coco,bbox.AP,39.0,absolute,,some other paper,v2,
"""


def test_the_tables_show_one_version_of_a_paper_and_say_which(tmp_path):
    published = parse_published(DISAGREEING)
    shown = published_for_tasks(published, ["coco1x"])
    assert shown[shown["method"] == "synco"][["version", "value_text"]].values.tolist() == [["v3", "41.0"]]
    (note,) = shown[shown["method"] == "synco"]["notes"]
    assert "tables show v3 of arXiv 2410.02401" in note and "v1 bbox.AP 40.4" in note
    assert "v7 bbox.AP +1.0 vs mocov2" in note
    # a source that SHOWN_VERSIONS does not name is not a versioned paper: both of its rows stand
    assert shown[shown["method"] == "mocov2"]["version"].tolist() == ["v1", "v2"]

    write_record(tmp_path, "a", make_record("synco", 200, 0, task="coco1x", ap=40.0))
    md = to_markdown(build_report(collect([tmp_path]), published=published))
    assert "arXiv 2410.02401v3 abstract, v3: schedule not stated; tables show v3 of arXiv 2410.02401" in md
    assert "| 41.0 |" in md and "| 40.4 |" not in md and "arXiv 2410.02401v1 abstract" not in md


def test_every_row_the_tables_show_names_its_source_and_version(tmp_path, capsys):
    for task in ("voc", "coco1x", "coco2x"):
        write_record(tmp_path, task, make_record("synco", 200, 0, task=task))
    write_record(tmp_path, "linear", classification_record("synco", 200, 0, "linear"))
    assert main(["tabulate", str(tmp_path), "--format", "md"]) == 0
    out = capsys.readouterr().out
    frame = load_published()
    for task in ("voc", "coco1x", "coco2x", "linear"):
        shown = published_for_task(frame, task)
        assert len(shown)
        for source, version in set(zip(shown["source"], shown["version"])):
            assert f"] {source}, {version}" in out  # the footnote of the row
    assert "arXiv 2410.02401v3 abstract, v3" in out
    for hidden in ("v1", "v4", "v7"):
        assert f"arXiv 2410.02401{hidden} abstract" not in out


def test_a_relative_claim_says_what_it_is_relative_to(tmp_path):
    published = parse_published(f"""{HEADER}
synco,,imagenet-linear,linear.top1,1.0,delta_vs_mochi,,a paper abstract,v1,relative claim
synco,,imagenet-linear,linear.top1,+0.4,delta_vs_mocov2,,a paper abstract,v1,relative claim
""")
    write_record(tmp_path, "a", classification_record("synco", 200, 0, "linear"))
    report = build_report(collect([tmp_path]), published=published)
    md, tex = to_markdown(report), to_latex(report)
    assert "+1.0 (vs mochi, reported)" in md and "+0.4 (vs mocov2, reported)" in md
    assert "$+1.0$\\,{\\scriptsize vs mochi}" in tex
