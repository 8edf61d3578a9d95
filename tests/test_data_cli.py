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
