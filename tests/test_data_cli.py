"""The data stages chained through the command line, as the Snakemake rules call them."""
from __future__ import annotations

import json

from data_fixtures import make_image_root, record, write_list

from tinyrs.cli import main
from tinyrs.data.manifest import open_manifest


def test_correct_oversample_validate(tmp_path, capsys):
    root = make_image_root(tmp_path / "images", {"UCM": 4, "dior": 4})
    records = [record(i, source=source) for source in ("UCM", "dior") for i in range(4)] + [{"image": "x.jpg"}]
    raw = write_list(tmp_path / "raw.json", records)
    factors = tmp_path / "factors.json"
    factors.write_text(json.dumps({"seed": 3, "default": 1, "factors": {"dior": 2}}))
    corrected, final = tmp_path / "corrected", tmp_path / "final"

    assert main(["data", "correct", "--list", str(raw), "--image-root", str(root), "--check", "decode",
                 "--max-rejected-fraction", "0.2", "--out-dir", str(corrected)]) == 0
    assert "read 9, kept 8, rejected {'missing_conversations': 1}" in capsys.readouterr().out
    assert main(["data", "oversample", "--in-dir", str(corrected), "--factors", str(factors), "--seed", "3",
                 "--out-dir", str(final)]) == 0
    assert main(["data", "validate", "--list", str(final / "list.json"), "--image-root", str(root)]) == 0
    assert json.loads((final / "report.json").read_text())["per_source"]["dior"] == {"before": 4, "after": 8}
    assert len(open_manifest(final / "manifest.parquet")) == 12


def test_data_errors_exit_2_with_the_message(tmp_path, capsys):
    raw = tmp_path / "raw.json"
    raw.write_text('[{"image": "a.jpg", "conversations": []}')
    code = main(["data", "correct", "--list", str(raw), "--image-root", str(tmp_path), "--check", "none",
                 "--out-dir", str(tmp_path / "out")])
    assert code == 2
    assert f"tinyrs: {raw}: byte " in capsys.readouterr().err


def _list_settings(path, oversample, **checks) -> str:
    """A list's data settings, as the workflow writes settings/data-<list>.json (tinyrs.config.all_stage_settings)."""
    settings = {"dataset": "sft", "file": "raw.json", "oversample": oversample, "check_images": "decode",
                "max_rejected_fraction": 0.2, "allow_empty": False, **checks}
    path.write_text(json.dumps(settings))
    return str(path)


def test_the_rules_pass_the_lists_settings_and_get_what_the_options_give(tmp_path):
    """A rule passes settings/data-<list>.json, the fetched dataset and its output folders; the commands read
    the list's file, checks and oversampling from the settings, as the options would give them."""
    root = make_image_root(tmp_path / "images", {"UCM": 4, "dior": 4})
    write_list(root / "raw.json", [record(i, source=source) for source in ("UCM", "dior") for i in range(4)])
    factors = {"seed": 3, "default": 1, "factors": {"dior": 2}}
    settings = _list_settings(tmp_path / "data-sft.json", factors)
    assert main(["data", "correct", "--settings", settings, "--image-root", str(root), "--workers", "1",
                 "--out-dir", str(tmp_path / "a" / "corrected")]) == 0
    assert main(["data", "oversample", "--settings", settings, "--in-dir", str(tmp_path / "a" / "corrected"),
                 "--out-dir", str(tmp_path / "a")]) == 0
    assert main(["data", "correct", "--list", str(root / "raw.json"), "--image-root", str(root), "--check", "decode",
                 "--max-rejected-fraction", "0.2", "--out-dir", str(tmp_path / "b" / "corrected")]) == 0
    assert main(["data", "oversample", "--in-dir", str(tmp_path / "b" / "corrected"), "--factors",
                 json.dumps(factors), "--seed", "3", "--out-dir", str(tmp_path / "b")]) == 0
    for name in ("corrected/corrected.json", "list.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_list_without_oversampling_is_shuffled_once_with_seed_0(tmp_path):
    """config `oversample: null`: every record once, shuffled with seed 0 (what the workflow always did); by hand,
    no --factors copies the list in order."""
    root = make_image_root(tmp_path / "images", {"UCM": 8})
    write_list(root / "raw.json", [record(i) for i in range(8)])
    corrected = tmp_path / "corrected"
    settings = _list_settings(tmp_path / "data-sft.json", None)
    assert main(["data", "correct", "--settings", settings, "--image-root", str(root), "--out-dir", str(corrected)]) == 0
    runs = {"null": ["--settings", settings], "explicit": ["--factors", '{"seed": 0, "default": 1.0}', "--seed", "0"],
            "none": ["--seed", "0"]}
    for name, options in runs.items():
        assert main(["data", "oversample", "--in-dir", str(corrected), *options, "--out-dir", str(tmp_path / name)]) == 0
    lists = {name: json.loads((tmp_path / name / "list.json").read_text()) for name in runs}
    assert lists["null"] == lists["explicit"] != lists["none"]
    assert sorted(lists["null"], key=lambda item: item["id"]) == lists["none"]


def test_an_option_neither_given_nor_in_settings_is_named(tmp_path, capsys):
    assert main(["data", "correct", "--image-root", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 2
    assert "give --list or --settings" in capsys.readouterr().err
