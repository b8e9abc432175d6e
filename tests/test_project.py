"""What a newcomer reads first stays short and true (the README's size and links, the configs' citations), and the
layout's rules hold: what serves an export runs without torch, and no module imports itself through others."""

import ast
import os
import re
import subprocess
import sys

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text(encoding="utf-8")) <= 10_000


def test_every_relative_link_in_the_docs_leads_somewhere():
    for page in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_every_source_file_the_docs_name_exists():
    # Paths of the repository's own files (runs' folders and placeholders aside); a line saying what a file
    # "formerly" held tells history.
    named = re.compile(
        r"\b((?:common|fashion_cnn|sst2_bilstm|tests|bench|scripts|configs|examples)/[\w/.-]+\.(?:py|sh|yaml|html))"
    )
    for page in DOCS:
        for line in page.read_text(encoding="utf-8").splitlines():
            for path in named.findall(line):
                if "formerly" not in line and not path.endswith("X.yaml"):
                    assert (REPO / path).is_file(), f"{page.name} names {path}, which does not exist"


def test_configs_cite_what_the_repository_holds():
    for config in (REPO / "configs").glob("*.yaml"):
        text = config.read_text()
        assert "SPEC" not in text, config.name
        for cited in re.findall(r"docs/[\w.]+\.md", text):
            assert (REPO / cited).is_file(), f"{config.name} cites {cited}"


# What runs where torch is not installed: an export's predictor and server (docs/serving.md). The subpackages'
# __init__.py import nothing, so that importing common.deploy.serve does not pull in Lightning.
TORCH_FREE = [
    "common",
    "common.errors",
    "common.images",  # its cache's writing imports what it needs when it writes
    "common.decoding",  # training on a folder of images decodes with it too
    *(f"common.deploy.{path.stem}" for path in (REPO / "common" / "deploy").glob("*.py") if path.stem != "export"),
    *(f"{workflow}.{name}" for workflow in ("fashion_cnn", "sst2_bilstm") for name in ("__init__", "predict", "serve")),
    "sst2_bilstm.tokenizer",
]
BLOCKED = ["torch", "torchvision", "lightning", "torchmetrics", "matplotlib"]


def test_the_torch_free_modules_import_without_torch():
    code = (
        "import importlib, sys\n"
        f"sys.modules.update(dict.fromkeys({BLOCKED!r}))\n"  # None there: importing them raises ImportError
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name.removesuffix('.__init__'))\n"
        "    except ImportError as error:\n"
        "        print(name, error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *TORCH_FREE], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr[-2000:]


PACKAGES = ("common", "fashion_cnn", "sst2_bilstm", "examples")


def project_imports() -> dict[str, set[str]]:
    """Each module of the project's packages, and the project's modules it imports: every ``import`` and ``from ...
    import`` in its code, those inside functions included (a deferred import still ties the two modules)."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package up
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
                # ``from package import module`` imports the module; ``from module import name``, the module
                imported.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of imports (its modules, the first repeated at the end), or [] where there is none."""
    done, path = set(), []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph[module]):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return []

    return next(filter(None, map(visit, sorted(graph))), [])


def test_no_module_imports_itself_through_others():
    graph = project_imports()
    # What the graph must see: an import inside a function, and one of a module from its package.
    assert "fashion_cnn.model" in graph["fashion_cnn.predict"] and "common.errors" in graph["common.deploy.serve"]
    cycle = import_cycle(graph)
    assert not cycle, "an import cycle: " + " -> ".join(cycle)


def test_every_run_of_the_suite_shows_its_slowest_tests():
    addopts = re.search(r'^addopts = "(.*)"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE)[1]
    assert "--durations=10" in addopts.split()


def test_the_gpu_check_says_how_to_run_it_and_refuses_without_a_gpu(tmp_path):
    def gpu_check(*args, **env):
        command = ["bash", str(REPO / "scripts" / "gpu_check.sh"), *args]
        return subprocess.run(command, capture_output=True, text=True, env=os.environ | env, timeout=60)

    shown = gpu_check("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: bash scripts/gpu_check.sh")
    assert gpu_check("everything").returncode == 2
    # An nvidia-smi that finds no GPU, whatever this machine has: the check stops before running anything.
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    refused = gpu_check("suite", PATH=f"{tmp_path}:{os.environ['PATH']}", OUT=str(tmp_path / "out"))
    assert refused.returncode == 2 and refused.stderr.startswith("error: no NVIDIA GPU here")
    assert not (tmp_path / "out").exists()
