"""Recipes: every built-in one validates and round-trips; bad fields fail with their dotted path; --set; the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing

import pytest
from click.testing import CliRunner
from conftest import REPO

import tinyzoo
from tinyzoo.cli import cli as tinyzoo_cli
from tinyzoo.errors import TinyzooError
from tinyzoo.plugin_loader import get_host
from tinyzoo.recipe import (
    EVAL_COMBINES,
    EVAL_VIEWS,
    SECTIONS,
    Recipe,
    RecipeError,
    Stage,
    StemMode,
    apply_overrides,
    load_raw,
    load_recipe,
    parse_recipe,
    recipe_to_toml,
    tomllib,
)
from tinyzoo.registry import get_registry
from tinyzoo.specs import STEM_MODES, RecipeSpec

ISSUE_NAMES = [
    "kim2016-resnet18", "zhai2016-vgg16", "zhai2016-resnet50", "zhai2016-resnet101", "zhai2016-resnet152",
    "zhai2016-resnet20-scratch", "zhai2016-resnet38-scratch", "yu2017-resnet20", "yu2017-alexnet",
    "yu2017-googlenet", "yu2017-baseline", "milani2017-inception-v3-transfer", "milani2017-inception-scratch",
    "tinyzoo-resnet18", "quickstart",
]
BUILTIN = sorted(p.stem for p in (REPO / "recipes").glob("*.toml"))

MINIMAL = {
    "name": "mini",
    "model": {"arch": "resnet18"},
    "stages": [
        {"name": "head", "train": "head", "epochs": 1, "optimizer": {"name": "sgd", "lr": 0.1}},
        {"name": "all", "train": "all", "epochs": 2, "optimizer": {"name": "adam", "lr": 0.001}, "schedule": {"name": "cosine"}},
    ],
}


def run(*args: str):
    result = CliRunner().invoke(tinyzoo_cli, list(args))
    return result


def error_of(data: dict) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(data, source="my.toml")
    return str(info.value)


# -- the built-in recipes ---------------------------------------------------------------
def test_every_issue_name_is_a_builtin_recipe():
    assert set(ISSUE_NAMES) <= set(BUILTIN)
    assert set(BUILTIN) <= set(get_registry().recipes)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipe_validates_and_round_trips(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.report and recipe.result and recipe.description
    assert get_registry().architecture(recipe.model.arch)
    text = recipe_to_toml(recipe)
    assert parse_recipe(tomllib.loads(text), source="resolved") == recipe
    assert recipe_to_toml(parse_recipe(tomllib.loads(text), source="resolved")) == text


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipe_names_only_what_is_installed(name):
    from tinyzoo.recipe_check import check_recipe

    check_recipe(load_recipe(name), name)  # architecture, stems, options, stage changes, augmentation


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipe_file_cites_its_report(name):
    first = (REPO / "recipes" / f"{name}.toml").read_text().splitlines()[0]
    assert first.startswith("# ") and ("shared/seeds" in (REPO / "recipes" / f"{name}.toml").read_text()[:600])


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipe_augmentation_builds(name):
    augment = pytest.importorskip("tinyzoo.data.augment")
    recipe = load_recipe(name)
    stats = object()  # stands in for the training split's statistics (normalize = "pixel")
    train = augment.Pipeline.from_config(recipe.train_augment_config(), stats=stats)
    evaluation = augment.Pipeline.from_config(recipe.eval_augment_config(), stats=stats, train=False)
    assert evaluation.crop == recipe.evaluation.crop
    if recipe.data.fixed_views:  # a finite set of views: no continuous randomness
        assert train.crop_mode in ("ten", "center") or train.crop == 64
        assert not (train.brightness or train.contrast or train.saturation or train.lighting or train.mixes)


def test_reports_procedures_are_encoded():
    kim = load_recipe("kim2016-resnet18")
    assert [s.train for s in kim.stages] == ["head", "all", "stem", "all"]
    assert [s.epochs for s in kim.stages] == [5, 10, 4, 13]
    assert kim.stages[2].adapt == {"stem": "small"} and kim.model.stem == "resize"
    assert all(s.optimizer.nesterov and s.optimizer.lr == 0.01 and s.schedule.name == "plateau" for s in kim.stages)
    assert (kim.evaluation.views, kim.evaluation.combine) == ("12crop", "expsum")

    r101 = load_recipe("zhai2016-resnet101")
    assert [(s.optimizer.lr, s.iterations, s.accumulation) for s in r101.stages] == [(0.1, 200, 8), (0.01, 17500, 8)]
    assert load_recipe("zhai2016-resnet50").stages[0].accumulation == 2

    yu = load_recipe("yu2017-googlenet")
    stage = yu.stages[0]
    assert (stage.schedule.name, stage.schedule.cycles, stage.epochs, stage.batch_size, stage.clip_grad_norm) == ("cyclic_cosine", 5, 10, 256, 10)

    milani = load_recipe("milani2017-inception-v3-transfer")
    assert milani.model.stem == "resize" and milani.stages[0].train == "head"
    assert (milani.stages[0].optimizer.name, milani.stages[0].schedule.name, milani.stages[0].label_smoothing) == ("adam", "exponential", 0.1)
    assert milani.evaluation.views == "10crop"


def test_schema_enums_match_the_modules_they_name():
    from tinyzoo.evaluate.combine import COMBINATIONS
    from tinyzoo.evaluate.views import VIEW_SETS

    assert set(EVAL_VIEWS) == set(VIEW_SETS)
    assert set(EVAL_COMBINES) == set(COMBINATIONS)
    assert typing.get_args(StemMode) == STEM_MODES


def test_docs_list_every_field_and_every_recipe():
    doc = (REPO / "docs" / "recipes.md").read_text()
    for cls in SECTIONS:
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in doc, f"docs/recipes.md lacks {cls.__name__}.{f.name}"
    for name in BUILTIN:
        assert f"| `{name}` |" in doc and f"tinyzoo train {name} --data DIR" in doc, name


# -- validation messages ----------------------------------------------------------------
def test_unknown_field_names_its_path_and_the_allowed_fields():
    data = apply_overrides(MINIMAL, ["stages[1].optimizer.lrr=0.1"])
    assert error_of(data) == (
        "my.toml: stages[1].optimizer.lrr: unknown field (did you mean lr?); "
        "allowed: name, lr, momentum, nesterov, weight_decay, betas, eps"
    )


def test_ill_typed_field_names_its_path_and_type():
    data = apply_overrides(MINIMAL, ["stages[1].optimizer.lr=fast"])
    assert error_of(data) == "my.toml: stages[1].optimizer.lr: expected a number, got 'fast' (a string)"
    data = apply_overrides(MINIMAL, ["stages.0.batch_size=1.5"])
    assert error_of(data) == "my.toml: stages[0].batch_size: expected an integer, got 1.5 (a number)"
    data = apply_overrides(MINIMAL, ["model.convolutionize=1"])
    assert error_of(data) == "my.toml: model.convolutionize: expected true or false, got 1 (an integer)"


def test_bad_enum_lists_the_allowed_values():
    data = apply_overrides(MINIMAL, ["stages[0].schedule.name=cosin"])
    assert error_of(data) == (
        "my.toml: stages[0].schedule.name: must be one of constant, step, plateau, cyclic_cosine, "
        "exponential, cosine; got 'cosin' (a string)"
    )
    assert error_of(apply_overrides(MINIMAL, ["model.stem=tiny"])) == (
        "my.toml: model.stem: must be one of keep, small, small-up2, resize; got 'tiny' (a string)"
    )


def test_missing_and_inconsistent_fields():
    data = apply_overrides(MINIMAL, [])
    del data["stages"][0]["optimizer"]["lr"]
    assert error_of(data) == "my.toml: stages[0].optimizer.lr: missing; expected a number"
    assert error_of(apply_overrides(MINIMAL, ["stages.0.iterations=10"])) == "my.toml: stages[0]: give exactly one of epochs or iterations"
    assert error_of(apply_overrides(MINIMAL, ["stages.0.batch_size=100", "stages.0.effective_batch=256"])) == (
        "my.toml: stages[0].effective_batch: must be a multiple of batch_size (100), not 256"
    )
    assert error_of(apply_overrides(MINIMAL, ["stages.0.schedule.name=step"])).startswith("my.toml: stages[0].schedule.step_size: ")
    assert error_of(apply_overrides(MINIMAL, ["stages.0.optimizer.lr=-1"])) == "my.toml: stages[0].optimizer.lr: must be greater than 0.0, not -1.0"
    assert error_of({**MINIMAL, "stages": []}) == "my.toml: stages: give at least one stage ([[stages]])"
    assert error_of({**MINIMAL, "data": {"eval": {"crop": 64}}}) == (
        "my.toml: data.eval.crop: set evaluation.crop instead (the size of every evaluation view)"
    )
    assert error_of({**MINIMAL, "result": {"val_acc": 1}}).startswith("my.toml: result.val_acc: unknown result; allowed: val_top1")


def test_error_is_one_line_from_the_cli(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[model]\narch = "resnet18"\n[[stages]]\nname = "s"\nepochs = 1\nfoo = 1\n'
                    '[stages.optimizer]\nname = "sgd"\nlr = 0.1\n')
    result = run("recipes", "check", str(path))
    assert result.exit_code == 1
    allowed = ", ".join(f.name for f in dataclasses.fields(Stage))
    assert result.output.strip().splitlines() == [f"Error: {path}: stages[0].foo: unknown field; allowed: {allowed}"]


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(TinyzooError, match=r"broken\.toml: not valid TOML"):
        load_recipe(str(path))


# -- defaults and the typed structure ---------------------------------------------------
def test_defaults_are_filled():
    recipe = parse_recipe(MINIMAL, source="mini")
    assert isinstance(recipe, Recipe)
    assert recipe.model.stem == "keep" and recipe.model.classes == 200 and recipe.model.weights is None
    head = recipe.stages[0]
    assert head.optimizer.momentum == 0.9 and head.optimizer.betas == (0.9, 0.999)
    assert head.schedule.name == "constant" and head.accumulation == 1 and head.freeze_bn
    assert head.train_patterns == ["head"]
    assert recipe.evaluation.views == "center" and recipe.evaluation.crop == 56
    assert recipe.run.amp == "auto" and recipe.run.channels_last and recipe.run.keep_snapshots == 1
    assert isinstance(head.epochs, float) and isinstance(recipe.stages[1].optimizer.lr, float)


def test_toml_writer_escapes_and_keeps_unset_fields_visible():
    recipe = parse_recipe(apply_overrides(MINIMAL, ['description="quote \\" tab \\t é"', 'data.train.jitter={brightness = 0.4}']), source="x")
    text = recipe_to_toml(recipe)
    assert "# weights is not set" in text
    assert parse_recipe(tomllib.loads(text), source="x") == recipe


# -- overrides --------------------------------------------------------------------------
def test_set_parses_toml_literals_and_falls_back_to_strings():
    data = apply_overrides(MINIMAL, [
        "stages[1].optimizer.lr=0.05",
        "stages.0.optimizer.nesterov=true",
        "stages.1.optimizer.betas=[0.8, 0.99]",
        "model.weights=none",
        "model.options.width=0.25",
        "data.train={crop = 56, flip = true}",
        "run.device=cuda:1",
    ])
    recipe = parse_recipe(data, source="x")
    assert recipe.stages[1].optimizer.lr == 0.05
    assert recipe.stages[0].optimizer.nesterov is True
    assert recipe.stages[1].optimizer.betas == (0.8, 0.99)
    assert recipe.model.weights == "none" and recipe.model.options == {"width": 0.25}
    assert recipe.data.train == {"crop": 56, "flip": True}
    assert recipe.run.device == "cuda:1"
    assert MINIMAL["stages"][1]["optimizer"]["lr"] == 0.001  # the input is not modified


def test_set_errors_are_one_line():
    with pytest.raises(TinyzooError, match=r"stages\.5: index out of range \(the list has 2 items\)"):
        apply_overrides(MINIMAL, ["stages.5.optimizer.lr=1"])
    with pytest.raises(TinyzooError, match="expected key.path=value"):
        apply_overrides(MINIMAL, ["stages.0.epochs"])
    with pytest.raises(TinyzooError, match="indexes a list"):
        apply_overrides(MINIMAL, ["stages.head.epochs=1"])


def test_load_recipe_applies_sets_and_names_them_in_errors():
    recipe = load_recipe("kim2016-resnet18", ["stages[3].epochs=1", "run.seed=7"])
    assert recipe.stages[3].epochs == 1 and recipe.run.seed == 7
    with pytest.raises(RecipeError, match=r"kim2016-resnet18\.toml \(with --set stages\.0\.epochs=x\): stages\[0\]\.epochs"):
        load_recipe("kim2016-resnet18", ["stages.0.epochs=x"])


# -- the command line -------------------------------------------------------------------
def test_cli_lists_every_recipe_with_its_report_and_result():
    result = run("recipes")
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()[2:]]
    assert set(ISSUE_NAMES) <= set(names)
    kim = next(line for line in result.output.splitlines() if line.startswith("kim2016-resnet18 "))
    assert "resnet18" in kim and "kim2016" in kim and "75.01" in kim


def test_cli_json_listing():
    rows = json.loads(run("recipes", "--json").output)
    by_name = {r["name"]: r for r in rows}
    assert set(ISSUE_NAMES) <= set(by_name)
    kim = by_name["kim2016-resnet18"]
    assert kim["arch"] == "resnet18" and kim["result"]["val_top1"] == 75.01
    assert [s["name"] for s in kim["stages"]] == ["head", "all-224", "stem", "all-56"]


def test_cli_show_prints_resolved_toml_with_overrides():
    result = run("recipes", "show", "zhai2016-resnet50", "--set", "stages[1].optimizer.lr=0.02")
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.output)
    assert data["stages"][1]["optimizer"]["lr"] == 0.02
    assert data["run"]["seed"] == 0  # defaults are filled in
    assert run("recipes", "show", "no-such-recipe").exit_code == 2


def test_cli_check_accepts_a_good_file():
    result = run("recipes", "check", str(REPO / "recipes" / "quickstart.toml"))
    assert result.exit_code == 0 and "ok" in result.output


def test_plugin_registered_recipe_appears():
    class RecipePlugin:
        @tinyzoo.hookimpl
        def register_recipes(self, register):
            register(RecipeSpec(name="plugin-recipe", data={**MINIMAL, "report": "somebody2024", "result": {"val_top1": 12.5}}, description="from a plugin"))

    get_host().register(RecipePlugin(), "recipe-plugin")
    rows = {r["name"]: r for r in json.loads(run("recipes", "--json").output)}
    assert rows["plugin-recipe"]["plugin"] == "recipe-plugin"
    assert rows["plugin-recipe"]["result"] == {"val_top1": 12.5}
    assert load_recipe("plugin-recipe").name == "plugin-recipe"  # the registered name wins over data's "mini"
    _, source = load_raw("plugin-recipe")
    assert source == "recipe 'plugin-recipe' (plugin recipe-plugin)"
    assert "plugin-recipe" in run("recipes").output


def test_invalid_plugin_recipe_is_listed_as_invalid():
    class BrokenPlugin:
        @tinyzoo.hookimpl
        def register_recipes(self, register):
            register(RecipeSpec(name="broken-recipe", data={"model": {"arch": "resnet18"}}))

    get_host().register(BrokenPlugin(), "broken")
    result = run("recipes")
    line = next(line for line in result.output.splitlines() if line.startswith("broken-recipe"))
    assert "invalid:" in line and "stages: missing" in line


def test_listing_recipes_does_not_import_torch():
    code = "import sys; from tinyzoo.cli import cli; cli(['recipes'], standalone_mode=False); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
