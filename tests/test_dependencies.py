"""pyproject.toml declares ranges; requirements.lock pins the tested set inside them; the venv
holds that set; and the one private Lightning function seglab replaces is still what Lightning's
DDP launcher calls."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#=]+)$")
# The pair that runs on CPU-only and CUDA machines alike (README: Installation).
TORCH_PAIR = {"torch": "2.14.1", "torchvision": "0.29.1"}


def declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for [project.dependencies] and every extra, less seglab's own
    extras (dev = seglab[optuna,export,cluster] + ...)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"],
              **{f"extra {name}": reqs
                 for name, reqs in project.get("optional-dependencies", {}).items()}}
    return [(where, Requirement(text)) for where, reqs in groups.items() for text in reqs
            if canonicalize_name(Requirement(text).name) != canonicalize_name(project["name"])]


def lock_lines() -> list[tuple[int, str]]:
    """(line number, text) of the lock's lines that are neither blank nor comments."""
    lines = LOCK.read_text().splitlines()
    return [(number, line.strip()) for number, line in enumerate(lines, 1)
            if line.strip() and not line.strip().startswith("#")]


def locked() -> dict[str, list[str]]:
    """canonical name -> the versions the lock pins for it (one, if the lock is sound)."""
    pins: dict[str, list[str]] = {}
    for _, line in lock_lines():
        match = PIN.match(line)
        if match:
            pins.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return pins


def test_lock_is_plain_pins_without_index_urls_or_hosts():
    assert LOCK.is_file(), f"{LOCK.name} is missing: run `make lock`"
    bad = [f"line {number}: {line}" for number, line in lock_lines() if not PIN.match(line)]
    assert not bad, (f"{LOCK.name} must hold only `name==version` lines and comments (no index "
                     "URLs, hosts, find-links, hashes or markers): " + "; ".join(bad))
    text = LOCK.read_text()
    for option in ("--index-url", "--extra-index-url", "--trusted-host", "--find-links",
                   "-i ", "-f ", "http://", "https://", "file:"):
        assert option not in text, f"{LOCK.name} names an index or host: {option.strip()!r}"


def test_each_declared_requirement_has_one_locked_version_in_its_range():
    pins = locked()
    problems = []
    for where, req in declared():
        versions = pins.get(canonicalize_name(req.name), [])
        if len(versions) != 1:
            problems.append(f"{req.name} ({where}): {len(versions)} entries in the lock")
        elif not req.specifier.contains(Version(versions[0]), prereleases=True):
            problems.append(f"{req.name} ({where}): locked {versions[0]} is outside {req}")
    assert not problems, ("pyproject.toml and requirements.lock disagree; after changing a "
                          "range run `make lock`: " + "; ".join(problems))


def test_no_package_is_locked_twice():
    twice = {name: versions for name, versions in locked().items() if len(versions) > 1}
    assert not twice, f"requirements.lock pins these more than once: {twice}"


def test_lock_keeps_the_cpu_and_cuda_torch_pair():
    pins = locked()
    for name, version in TORCH_PAIR.items():
        assert pins.get(name) == [version], (
            f"requirements.lock must pin {name}=={version} (it pins {pins.get(name)}): that "
            "torch/torchvision pair runs on CPU-only and CUDA machines")


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_installed_versions_are_the_locked_ones():
    """A venv made before the lock changed (or a lock edited by hand) is caught here."""
    pins = locked()
    stale: set[str] = set()
    for _, req in declared():
        versions = pins.get(canonicalize_name(req.name))
        if not versions:  # reported by the range test above
            continue
        have = installed(req.name)
        if have is None or Version(have) != Version(versions[0]):
            stale.add(f"{req.name}: installed {have}, locked {versions[0]}")
    # Transitive pins too, where installed: the platform decides some (nvidia-* on x86_64 only).
    for name, versions in pins.items():
        have = installed(name)
        if have is not None and Version(have) != Version(versions[0]):
            stale.add(f"{name}: installed {have}, locked {versions[0]}")
    assert not stale, ("this environment is not the locked set (`make install` re-installs "
                       "from requirements.lock): " + "; ".join(sorted(stale)))


# seglab/core/distributed.py replaces this private function of Lightning's DDP launcher, in both
# of these modules, so that the processes of a DDP job inside a Hydra multirun re-run that job.
PATCHED = "_hydra_subprocess_cmd"
LAUNCHER_MODULES = ("lightning.fabric.strategies.launchers.subprocess_script",
                    "lightning.pytorch.strategies.launchers.subprocess_script")


def changed(module: str, what: str) -> str:
    import lightning

    return (f"Lightning {lightning.__version__} changed {module}.{PATCHED}: {what}. seglab "
            "replaces that private function (seglab/core/distributed.py, job_subprocess_command) "
            "so each DDP process of a Hydra multirun job re-runs only its job: update "
            "seglab/core/distributed.py to the new launcher (and tests/test_ddp.py), or hold "
            "lightning below this release in pyproject.toml")


def test_lightnings_own_hydra_subprocess_cmd_takes_local_rank():
    """Lightning's original function (a fresh interpreter: importing seglab replaces it)."""
    probe = textwrap.dedent(f"""
        import importlib, inspect, json
        found = {{}}
        for name in {list(LAUNCHER_MODULES)!r}:
            module = importlib.import_module(name)
            function = getattr(module, {PATCHED!r}, None)
            found[name] = (None if function is None else
                           list(inspect.signature(function).parameters))
        print(json.dumps(found))
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for module in LAUNCHER_MODULES:
        assert found[module] is not None, changed(module, "it no longer exists")
        assert found[module] == ["local_rank"], changed(
            module, f"its parameters are ({', '.join(found[module])}), not (local_rank)")


@pytest.mark.parametrize("module_name", LAUNCHER_MODULES)
def test_lightnings_launcher_calls_it_by_its_module_global_name(module_name):
    module = importlib.import_module(module_name)
    launcher = getattr(module, "_SubprocessScriptLauncher", None)
    method = getattr(launcher, "_call_children_scripts", None)
    assert method is not None, changed(
        module_name, "_SubprocessScriptLauncher._call_children_scripts, which called it, is gone")
    assert method.__globals__ is vars(module), changed(
        module_name, "_SubprocessScriptLauncher now lives in "
        f"{method.__globals__.get('__name__')}, so replacing the name here does nothing")
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id == PATCHED]
    assert calls, changed(module_name, "_SubprocessScriptLauncher._call_children_scripts no "
                                       f"longer calls {PATCHED}(...) by that name")
    bound_locally = PATCHED in method.__code__.co_varnames or any(
        isinstance(node, ast.alias) and (node.asname or node.name).split(".")[-1] == PATCHED
        for node in ast.walk(tree))
    assert not bound_locally, changed(
        module_name, "_call_children_scripts binds the name locally, so the module global that "
                     "seglab replaces is not the one it calls")
    for call in calls:
        assert len(call.args) + len(call.keywords) == 1 and all(
            keyword.arg == "local_rank" for keyword in call.keywords), changed(
            module_name, f"it is called as {ast.unparse(call)}, not with local_rank alone")


def test_seglab_replaces_it_in_both_modules():
    from seglab.core.distributed import job_subprocess_command

    for module_name in LAUNCHER_MODULES:
        module = importlib.import_module(module_name)
        assert getattr(module, PATCHED, None) is job_subprocess_command, (
            f"after importing seglab.core.distributed, {module_name}.{PATCHED} is not seglab's "
            "job_subprocess_command: DDP inside a multirun would restart the whole sweep")
