"""``predict --boxes``: the simple and COCO box files (the README's examples read as documented)
and their errors."""

import json
import re
from pathlib import Path

import pytest

from tailgraph.errors import DataError
from tailgraph.io.box_files import ImageBoxes, check_inside, read_box_file

CLASSES = ["__background__", "hat", "man", "street", "cup", "dog", "tree", "horse"]


def _readme_json_blocks():
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text[text.index("**Predict on your own images.**") :]
    section = section[: section.index("**Predict a data set.**")]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_the_readme_examples_read_as_documented(tmp_path):
    simple, coco = _readme_json_blocks()
    classes = ["__background__", "a", "b", "hat", "c", "d", "e", "man", "street"]
    (tmp_path / "s.json").write_text(json.dumps(simple))
    (tmp_path / "c.json").write_text(json.dumps(coco))
    s = read_box_file(tmp_path / "s.json", classes)
    c = read_box_file(tmp_path / "c.json", classes)
    assert sorted(s) == ["kitchen", "trip/day1"] and list(c) == ["kitchen"]
    assert s["kitchen"].labels == c["kitchen"].labels == [7, 3]
    assert s["kitchen"].boxes == c["kitchen"].boxes == [[34, 50, 210, 380], [150, 40, 200, 90]]


def test_simple_form_errors(tmp_path):
    f = tmp_path / "b.json"

    def err(doc):
        f.write_text(json.dumps(doc))
        with pytest.raises(DataError) as e:
            read_box_file(f, CLASSES)
        return str(e.value)

    assert "unknown class 'unicorn'" in err({"a.jpg": [{"box": [0, 0, 1, 1], "label": "unicorn"}]})
    assert "hat" in err({"a.jpg": [{"box": [0, 0, 1, 1], "label": "unicorn"}]})
    assert "'label'" in err({"a.jpg": [{"box": [0, 0, 1, 1], "label": "__background__"}]})
    assert "x1 < x2" in err({"a.jpg": [{"box": [5, 0, 1, 1], "label": "hat"}]})
    assert "four numbers" in err({"a.jpg": [{"box": [0, 0, "1", 1], "label": "hat"}]})
    assert "four numbers" in err({"a.jpg": [{"box": [0, False, 1, 1], "label": "hat"}]})
    assert "twice" in err({"a.jpg": [], "a.png": []})
    assert "list" in err({"a.jpg": {"box": [0, 0, 1, 1]}})
    assert "file names" in err([{"image_id": 1, "bbox": [0, 0, 1, 1], "category_id": 1}])
    assert "expected" in err(3)
    assert str(f) in err({"a.jpg": [{"box": [0, 0, 1], "label": "hat"}]})


def test_box_inside_the_image():
    check_inside(ImageBoxes([[0, 0, 64, 48]], [1]), 64, 48, "f", "s")
    with pytest.raises(DataError, match="outside the 64x48 image"):
        check_inside(ImageBoxes([[0, 0, 64, 300]], [1]), 64, 48, "f", "s")
