"""The plugin system: entry points, broken plugins, duplicates, misspelled hooks, and the docs."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

import tinyzoo
from tinyzoo import hookspecs
from tinyzoo.errors import UnknownNameError
from tinyzoo.plugin_loader import PluginHost, PluginRecord
from tinyzoo.registry import registry_of
from tinyzoo.specs import ROLE_ORDERS, AdapterSpec, ArchitectureSpec, RecipeSpec

EXAMPLE = REPO / "docs" / "examples" / "tinyzoo-example-plugin"


def arch(name: str, **kw) -> ArchitectureSpec:
    return ArchitectureSpec(name=name, family="toy", source="tinyzoo", builder="toy:build", **kw)


class ToyPlugin:
    @tinyzoo.hookimpl
    def register_architectures(self, register):
        register(arch("toy_net"))

    @tinyzoo.hookimpl
    def register_recipes(self, register):
        register(RecipeSpec(name="toy-recipe", data={"model": {"arch": "toy_net"}}))


def test_registered_plugin_contributes_and_unregisters():
    host = PluginHost(load_entry_points=False)
    host.register(ToyPlugin(), "toy")
    assert registry_of(host).architecture("toy_net").plugin == "toy"
    assert registry_of(host).recipe("toy-recipe").plugin == "toy"
    host.unregister("toy")
    with pytest.raises(UnknownNameError):
        registry_of(host).architecture("toy_net")


def test_duplicate_name_is_refused_naming_both_plugins(capsys):
    class Second:
        @tinyzoo.hookimpl
        def register_architectures(self, register):
            register(arch("other_net"))
            register(arch("toy_net"))

    host = PluginHost(load_entry_points=False)
    host.register(ToyPlugin(), "a-first")
    host.register(Second(), "b-second")
    registry = registry_of(host)
    # All or nothing: the refused plugin keeps none of its names.
    assert "other_net" not in registry.architectures
    assert registry.architecture("toy_net").plugin == "a-first"
    record = host.records["b-second"]
    assert record.status == "failed"
    assert record.error == "architecture 'toy_net' is registered by both plugin 'a-first' and plugin 'b-second'"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tinyzoo: warning: plugin 'b-second' skipped: architecture 'toy_net' is registered by both plugin 'a-first' and plugin 'b-second'"]


def test_builtin_plugin_wins_a_duplicate():
    class Impostor:
        @tinyzoo.hookimpl
        def register_architectures(self, register):
            register(arch("resnet18"))

    host = PluginHost(load_entry_points=False)
    host.register(Impostor(), "aaa-impostor")
    import tinyzoo_plugins.architectures as builtin

    host.register(builtin, "tinyzoo-architectures", builtin=True)
    assert registry_of(host).architecture("resnet18").plugin == "tinyzoo-architectures"
    assert "'tinyzoo-architectures' and plugin 'aaa-impostor'" in host.records["aaa-impostor"].error


def test_misspelled_hook_is_rejected(capsys):
    class Typo:
        @tinyzoo.hookimpl
        def register_architecture(self, register):  # missing the final "s"
            register(arch("typo_net"))

    host = PluginHost(load_entry_points=False)
    record = host.register(Typo(), "typo")
    assert record.status == "failed"
    assert "register_architecture" in record.error and record.error.startswith("rejected: PluginValidationError")
    assert "typo_net" not in registry_of(host).architectures
    assert "plugin 'typo' skipped" in capsys.readouterr().err


def test_hook_that_raises_disables_only_that_plugin():
    class Raises:
        @tinyzoo.hookimpl
        def register_architectures(self, register):
            raise RuntimeError("boom\nsecond line")

    host = PluginHost(load_entry_points=False)
    host.register(ToyPlugin(), "toy")
    host.register(Raises(), "raises")
    assert "toy_net" in registry_of(host).architectures
    assert host.records["raises"].error == "register_architectures raised RuntimeError: boom second line"


def test_register_with_wrong_type_is_refused():
    class WrongType:
        @tinyzoo.hookimpl
        def register_architectures(self, register):
            register({"name": "dict_net"})

    host = PluginHost(load_entry_points=False)
    host.register(WrongType(), "wrong")
    registry_of(host)
    assert host.records["wrong"].error == "register_architectures raised TypeError: register() in 'wrong' got dict, expected ArchitectureSpec"


def test_hooks_are_called_through_pluggy_so_wrappers_and_tracing_see_them():
    seen = []

    class Wrapper:
        @tinyzoo.hookimpl(wrapper=True)
        def register_architectures(self, register):
            seen.append("before")
            result = yield
            seen.append("after")
            return result

    class Raises:
        @tinyzoo.hookimpl
        def register_architectures(self, register):
            raise RuntimeError("boom")

    host = PluginHost(load_entry_points=False)
    host.register(ToyPlugin(), "toy")
    host.register(Raises(), "raises")
    host.register(Wrapper(), "wrapper")
    traced = []
    host.pm.trace.root.setwriter(traced.append)
    host.pm.enable_tracing()
    registry = registry_of(host)
    assert "toy_net" in registry.architectures and host.records["raises"].status == "failed"
    assert host.records["wrapper"].status == "loaded"  # a wrapper is not a plugin of its own to call
    assert seen == ["before", "after", "before"]  # around toy's call, and around the one that raised
    assert sum(line.strip().startswith("register_architectures [hook]") for line in traced) == 2  # one call per plugin


def test_an_adapter_names_its_role_and_order():
    assert AdapterSpec(name="head", apply="m:f").order == ROLE_ORDERS["head"]
    assert (AdapterSpec(name="stem-small-x", role="stem-small", apply="m:f").order) == ROLE_ORDERS["stem-small"]
    step = AdapterSpec(name="my-step", apply="m:f", order=250)
    assert (step.role, step.to_dict()["order"]) == ("my-step", 250)
    with pytest.raises(ValueError, match="role 'stem-small-x' is not one of tinyzoo's .*give role= one of them, or order="):
        AdapterSpec(name="stem-small-x", apply="m:f")
    with pytest.raises(ValueError, match="order must be an int, not '250'"):
        AdapterSpec(name="my-step", apply="m:f", order="250")
    with pytest.raises(ValueError, match="apply must be 'module:function', not 'm.f'"):
        AdapterSpec(name="head", apply="m.f")


def test_a_plugin_command_may_not_replace_a_core_command_or_another_plugins(capsys):
    import click
    from click.testing import CliRunner

    from tinyzoo.cli import add_plugin_commands, cli
    from tinyzoo.console import TinyzooGroup
    from tinyzoo.plugin_loader import get_host

    def plugin_adding(*names):
        class Plugin:
            @tinyzoo.hookimpl
            def register_commands(self, cli):
                for name in names:
                    cli.command(name)(lambda name=name: click.echo(f"plugin {name}"))
        return Plugin()

    host = get_host()
    host.register(plugin_adding("hello"), "greeter")
    host.register(plugin_adding("bonjour", "list"), "hijacker")
    host.register(plugin_adding("hello"), "copycat")
    group = TinyzooGroup(commands=dict(cli.commands))  # a copy: the real group is left as it is
    add_plugin_commands(group)
    assert group.commands["list"] is cli.commands["list"] and "bonjour" not in group.commands  # refused whole
    assert "hello" in group.commands
    assert host.records["hijacker"].error == "register_commands would replace tinyzoo's own command 'list'"
    assert host.records["copycat"].error == "register_commands would replace the command of plugin 'greeter' 'hello'"
    assert capsys.readouterr().err.splitlines() == [
        "tinyzoo: warning: plugin 'hijacker' skipped: register_commands would replace tinyzoo's own command 'list'",
        "tinyzoo: warning: plugin 'copycat' skipped: register_commands would replace the command of plugin 'greeter' 'hello'",
    ]
    records = {r["name"]: r for r in json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)}
    assert (records["hijacker"]["status"], records["copycat"]["status"], records["greeter"]["status"]) == ("failed", "failed", "loaded")


def test_every_hook_is_documented():
    doc = (REPO / "docs" / "plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert hooks == ["register_adapters", "register_architectures", "register_commands", "register_recipes"]
    for name in hooks:
        assert re.search(rf"^### `{name}\(", doc, re.M), f"docs/plugins.md has no section for {name}"
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"


# -- heavy imports -----------------------------------------------------------------------
HEAVY_PLUGIN = """import tinyzoo
{imports}


@tinyzoo.hookimpl
def register_architectures(register):
    pass
"""


def load_plugin(host: PluginHost, module: str, name: str) -> PluginRecord:
    """Load ``module`` (on sys.path) into ``host`` through a real entry point, as installed plugins load."""
    from importlib import metadata

    record = host.records.setdefault(name, PluginRecord(name, module))
    host.load(metadata.EntryPoint(name=name, value=module, group="tinyzoo"), record)
    return record


def test_a_plugin_that_imports_a_heavy_package_is_flagged_and_warned_about(tmp_path, monkeypatch):
    """sys.modules before and after the import: a (fake) heavy package the plugin brought in is named."""
    from click.testing import CliRunner

    from tinyzoo import plugin_loader
    from tinyzoo.cli import cli

    (tmp_path / "fake_heavy_package.py").write_text("import time\ntime.sleep(0.2)  # a slow import\n")
    (tmp_path / "heavy_plugin.py").write_text(HEAVY_PLUGIN.format(imports="import fake_heavy_package  # noqa: F401"))
    (tmp_path / "light_plugin.py").write_text(HEAVY_PLUGIN.format(imports=""))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugin_loader, "HEAVY_MODULES", (*plugin_loader.HEAVY_MODULES, "fake_heavy_package"))
    host = PluginHost(load_entry_points=False)
    heavy, light = load_plugin(host, "heavy_plugin", "heavy"), load_plugin(host, "light_plugin", "light")
    assert (heavy.status, heavy.heavy_imports, light.heavy_imports) == ("loaded", ["fake_heavy_package"], [])
    assert heavy.import_seconds >= 0.2 > light.import_seconds

    monkeypatch.setattr(plugin_loader, "_host", host)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^heavy\s+-\s+-\s+loaded\s+fake_heavy_package\s+register_architectures$", result.stdout, re.M)
    assert re.search(r"^light\s+-\s+-\s+loaded\s+-\s+register_architectures$", result.stdout, re.M)
    assert result.stderr == (
        f"tinyzoo: warning: plugin 'heavy' imports fake_heavy_package when it loads (its import took {heavy.import_seconds:.1f} s), "
        "and every tinyzoo command loads every plugin, `tinyzoo list` included: import it inside the builder, adapter or command "
        "that uses it\n"
    )
    as_json = CliRunner().invoke(cli, ["plugins", "--json"])
    assert {r["name"]: r["heavy_imports"] for r in json.loads(as_json.stdout)} == {"heavy": ["fake_heavy_package"], "light": []}


def test_torch_imported_earlier_is_still_seen_in_the_plugins_namespace(tmp_path, monkeypatch):
    """torch is already loaded in this process, so sys.modules cannot tell; the names the plugin binds can."""
    import torch  # noqa: F401

    (tmp_path / "torch_plugin.py").write_text(HEAVY_PLUGIN.format(imports="from torch import nn  # noqa: F401"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugin(PluginHost(load_entry_points=False), "torch_plugin", "uses-torch").heavy_imports == ["torch"]


# -- real entry-point metadata, in subprocesses ------------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """A folder on PYTHONPATH holding the example plugin, installed by pip (real dist-info),
    and a broken plugin whose import raises."""
    site = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("example") / EXAMPLE.name  # pip builds in place: keep the repo clean
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        check=True, capture_output=True, text=True,
    )
    (site / "tinyzoo_broken_plugin.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    dist = site / "tinyzoo_broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyzoo-broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tinyzoo]\nbroken = tinyzoo_broken_plugin\n")
    return site


def test_example_plugin_is_found_through_entry_points(plugin_site, cli):
    env = {"PYTHONPATH": str(plugin_site)}
    listing = cli("list", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    names = {spec["name"]: spec for spec in json.loads(listing.stdout)}
    assert names["tiny_cnn"]["plugin"] == "example"
    assert "resnet18" in names  # the broken plugin did not take the built-ins down
    assert listing.stderr.strip().splitlines() == [
        "tinyzoo: warning: plugin 'broken' skipped: failed to import: ImportError: this plugin is broken on purpose"
    ]

    plugins = cli("plugins", "--json", env=env)
    records = {r["name"]: r for r in json.loads(plugins.stdout)}
    assert records["example"]["package"] == "tinyzoo-example-plugin"
    assert records["example"]["hooks"] == ["register_adapters", "register_architectures", "register_recipes"]
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["error"] == "failed to import: ImportError: this plugin is broken on purpose"
    assert "tinyzoo-architectures" not in records  # built-ins only with --all

    table = cli("plugins", env=env).stdout
    assert re.search(r"^broken\s+tinyzoo-broken-plugin\s+1\.0\s+failed\s+-\s+failed to import", table, re.M)
    assert re.search(r"^example\s+tinyzoo-example-plugin\s+0\.1\.0\s+loaded\s+-\s+register_adapters", table, re.M)
    assert records["example"]["heavy_imports"] == [] and records["example"]["import_seconds"] >= 0


@pytest.mark.slow  # three CLI runs, `tinyzoo adapt` importing torch: 12 s on 2 busy cores
def test_the_docs_example_runs_as_written(plugin_site, cli, tmp_path, monkeypatch):
    doc = (REPO / "docs" / "plugins.md").read_text()
    block = re.search(r"```bash\n(.*?)```", doc, re.S).group(1)
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert commands[0][:2] == ["pip", "install"]  # what the plugin_site fixture does
    env = {"PYTHONPATH": str(plugin_site)}
    for argv in commands[1:]:
        assert argv[0] == "tinyzoo"
        result = cli(*argv[1:], env=env, cwd=tmp_path)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr[-2000:]}"
    config = json.loads((tmp_path / "tiny-cnn" / "config.json").read_text())
    assert [a["name"] for a in config["adapters"]] == ["tiny-cnn-dropout"]
    monkeypatch.syspath_prepend(str(plugin_site))  # load replays the step, here in the test's process
    from tinyzoo.plugin_loader import get_host

    get_host().register(importlib.import_module("tinyzoo_example_plugin"), "example")
    assert type(tinyzoo.load(tmp_path / "tiny-cnn")[5][1]).__name__ == "Dropout"
    # The adapter example in the docs is the example plugin's code, which ran above.
    section = doc[doc.index("### `register_adapters(register)`"):doc.index("### `register_recipes(register)`")]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert example in (EXAMPLE / "tinyzoo_example_plugin.py").read_text()


def test_load_plugins_variable_restricts_loading(plugin_site, cli):
    env = {"PYTHONPATH": str(plugin_site), "TINYZOO_LOAD_PLUGINS": "example"}
    listing = cli("list", "--json", env=env)
    assert listing.returncode == 0 and listing.stderr == ""
    assert [s["name"] for s in json.loads(listing.stdout)] == ["tiny_cnn"]
    records = {r["name"]: r for r in json.loads(cli("plugins", "--all", "--json", env=env).stdout)}
    assert records["tinyzoo-architectures"]["status"] == "disabled"
    assert records["broken"]["status"] == "disabled"

    builtins_only = cli("list", "--json", env={"PYTHONPATH": str(plugin_site), "TINYZOO_LOAD_PLUGINS": "tinyzoo-architectures"})
    assert "tiny_cnn" not in builtins_only.stdout and "resnet18" in builtins_only.stdout
