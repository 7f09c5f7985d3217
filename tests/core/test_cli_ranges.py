"""Every size-like argument has a documented range, checked before anything is allocated or
written: one line on stderr, exit 2, no output folder."""

import argparse

import pytest

from tailgraph.cli import main
from tailgraph.io.args import float_in, int_in


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["synth", "--train", "-1"], "--train: -1 is outside [0, 200000]"),
        (["synth", "--train", "2.5"], "--train: '2.5' is not an integer"),
        (["synth", "--train", "True"], "--train: 'True' is not an integer"),
        (["synth", "--size", "0"], "--size: 0 is outside [32, 4096]"),
        (["synth", "--size", "200000"], "--size: 200000 is outside [32, 4096]"),
        (["synth", "--train", "0", "--test", "0"], "nothing to generate"),
        (["synth", "--seed", "-3"], "--seed"),
        (["demo", "--train", "-5"], "--train: -5 is outside [20, 200000]"),
        (["demo", "--stage-epochs", "4", "0"], "--stage-epochs: 0 is outside [1, 1000]"),
        (["evaluate", "--gt", "g", "--pred", "p", "-k", "0"], "-k: 0 is outside [1, 10000]"),
        (["evaluate", "--gt", "g", "--pred", "p", "--semi-threshold", "nan"], "outside [0.0"),
        (["predict", "--ckpt", "c", "--input", "i", "--top", "0"], "--top: 0 is outside"),
        (["predict", "--ckpt", "c", "--input", "i", "--batch-size", "1e9"], "--batch-size"),
    ],
)
def test_out_of_range_arguments_are_one_line_errors(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    try:
        code = main([*argv, "--out", str(out)])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_range_types_accept_what_is_inside():
    assert int_in(0, 5)("5") == 5 and int_in(0, 5)("2.0") == 2 and int_in(-3, 3)("-3") == -3
    assert float_in(0, 1)("0.25") == 0.25
    for bad in ("6", "1.5", "inf", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            int_in(0, 5)(bad)


RECIPE = "configs/synthetic/ag_predcls_sttran.yaml"


@pytest.mark.parametrize(
    "option,needle",
    [
        (["--trainer.max_epochs", "0"], "'trainer.max_epochs': 0 is outside [1, 100000]"),
        (["--model.context.init_args.proj_dim", "100000000"], "'model.context.proj_dim'"),
        (["--model.context.init_args.proj_dim", "1.5"], "expected an integer"),
        (["--model.context.init_args.num_heads", "true"], "got True"),
        (["--data.init_args.synth_train", "300000"], "'data.synth_train': 300000 is outside"),
        (["--data.init_args.max_size", "8"], "'data.max_size': 8 is outside [32, 8192]"),
    ],
)
def test_recipe_options_out_of_range_are_one_line_errors(option, needle, tmp_path):
    import subprocess
    import sys

    argv = ["fit", "--config", RECIPE, *option, "--trainer.default_root_dir", str(tmp_path)]
    r = subprocess.run(
        [sys.executable, "-m", "tailgraph.cli", *argv], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and needle in err and RECIPE in err, err
    assert list(tmp_path.iterdir()) == []


def test_every_shipped_recipe_is_inside_the_ranges():
    from pathlib import Path

    import yaml

    from tailgraph.io.recipes import check_recipe_values

    recipes = sorted(Path("configs").rglob("*.yaml"))
    assert len(recipes) > 20
    for path in recipes:
        check_recipe_values(yaml.safe_load(path.read_text()), str(path))


def test_recipe_ranges_read_unlimited_and_text_values():
    from tailgraph.errors import DataError
    from tailgraph.io.recipes import check_recipe_values

    check_recipe_values({"trainer": {"max_epochs": -1, "max_steps": None}})
    check_recipe_values({"model": {"context": {"class_path": "x", "hidden_dim": "64"}}})
    for bad in ({"model": {"lr": float("inf")}}, {"data": {"init_args": {"batch_size": 0}}}):
        with pytest.raises(DataError):
            check_recipe_values(bad)
