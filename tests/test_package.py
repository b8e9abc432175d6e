"""The project built as a wheel, installed elsewhere and run from outside the source tree."""

import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import pytest
import yaml

from tests.conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A folder holding the wheel's packages and console scripts (``pip install --target``), and a folder far
    from both the checkout and that one to run in."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build leaves nothing in the checkout
    skipped = shutil.ignore_patterns(".*", "runs", "data", "build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, ignore=skipped)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # An installed setuptools >= 77 builds offline; with an older one (it cannot read pyproject's license field)
    # or none, pip fetches one from the package index, which a machine without network cannot do.
    try:
        offline = int(version("setuptools").split(".")[0]) >= 77
    except PackageNotFoundError:
        offline = False
    build = [*pip, "wheel", "--no-deps", *(["--no-build-isolation"] if offline else []), "-w", str(root / "dist")]
    result = subprocess.run([*build, str(source)], capture_output=True, text=True)
    if result.returncode and not offline and "setuptools" in result.stdout + result.stderr:
        pytest.skip("no setuptools >= 77 here to build the wheel, and pip could not fetch one")
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next((root / "dist").glob("*.whl"))
    site = root / "site"
    install = [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    shutil.rmtree(source)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return site, elsewhere


def run_installed(installed, *command):
    site, elsewhere = installed
    return subprocess.run(
        command, cwd=elsewhere, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )


def test_the_wheel_ships_the_configs_and_runs_from_its_own_files(installed):
    site, _ = installed
    code = "import common.packaged, fashion_cnn.train as t; print(common.packaged.config_path('sst2_bilstm.yaml'), t.__file__)"
    result = run_installed(installed, sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    config, module = result.stdout.split()
    assert config == str(site / "common" / "configs" / "sst2_bilstm.yaml") and module.startswith(str(site))
    assert (site / "common" / "deploy" / "page.html").is_file()  # the served page
    assert all(
        (site / "bin" / f"{w}-{c}").is_file() for w in ("fashion-cnn", "sst2-bilstm") for c in ("export", "serve")
    )


@pytest.mark.parametrize("command, epochs, callbacks", [("fashion-cnn", 10, 3), ("sst2-bilstm", 5, 5)])
def test_console_commands_print_the_reference_config(installed, command, epochs, callbacks):
    site, _ = installed
    result = run_installed(installed, str(site / "bin" / command), "fit", "--print_config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["trainer"]["max_epochs"] == epochs and len(config["trainer"]["callbacks"]) == callbacks
    assert config["seed_everything"] == 42
    result = run_installed(installed, str(site / "bin" / command), "test", "--help")
    assert result.stdout.startswith(f"usage: {command} test ")
    result = run_installed(installed, str(site / "bin" / f"{command}-predict"), "--help")
    assert result.returncode == 0 and result.stdout.startswith(
        f"usage: {command}-predict [-h] (--ckpt CKPT | --model MODEL)"
    )


def test_a_missing_reference_config_is_an_error(installed):
    site, _ = installed
    config = site / "common" / "configs" / "fashion_cnn.yaml"
    saved = config.read_bytes()
    config.unlink()
    try:
        result = run_installed(installed, str(site / "bin" / "fashion-cnn"), "fit", "--print_config")
    finally:
        config.write_bytes(saved)
    assert result.returncode == 2 and "the config fashion_cnn.yaml is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkout_that_was_never_installed_finds_its_configs(tmp_path):
    """Run from a copy of the checkout on PYTHONPATH alone, common.configs is no package: configs/ is read."""
    shutil.copytree(REPO / "common", tmp_path / "common", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import common.packaged as p; print(p.config_path('fashion_cnn.yaml'))"
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "configs" / "fashion_cnn.yaml")
