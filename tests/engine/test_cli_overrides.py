"""Whole-component overrides on the command line: ``--model.C SPEC`` and
``--model.C.class_path X`` replace a component the recipe set, in the command line's order."""

import json
import subprocess
import sys

import pytest
import yaml

RECIPE = "configs/synthetic/ag_predcls_sttran.yaml"
STTRAN = "tailgraph.modeling.context.sttran.STTranContext"
SPEC = {"class_path": STTRAN, "init_args": {"proj_dim": 32}}


def _printed(*args):
    r = subprocess.run(
        [sys.executable, "-m", "tailgraph.cli", "fit", "--config", RECIPE, *args, "--print_config"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ["--model.context", json.dumps(SPEC)],
            {"class_path": STTRAN, "init_args": {"proj_dim": 32}},
        ),
        ([f"--model.context.class_path={STTRAN}"], {"class_path": STTRAN}),
        (  # a later option still refines the replaced component
            [
                "--model.context",
                yaml.safe_dump(SPEC, default_flow_style=True),
                "--model.context.init_args.embed_dim",
                "16",
            ],
            None,
        ),
    ],
)
def test_a_component_spec_replaces_the_recipes(args, expected):
    r = _printed(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    context = yaml.safe_load(r.stdout)["model"]["context"]
    if expected is not None:
        assert context == expected
    else:
        assert context["class_path"] == STTRAN and context["init_args"]["proj_dim"] == 32
        assert str(context.get("embed_dim", context["init_args"].get("embed_dim"))) == "16"


def test_a_component_spec_that_is_not_a_mapping_is_one_line():
    r = _printed("--model.head", "[1, 2]")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "tailgraph fit: field '--model.head': expected a mapping with class_path (or null), "
        "got '[1, 2]'"
    ]
