"""What a newcomer reads first stays short and true: the README's size and links, the configs' citations, and
shared modules small enough to read top to bottom."""

import re

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text(encoding="utf-8")) <= 10_000


def test_every_relative_link_in_the_docs_leads_somewhere():
    for page in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_configs_cite_what_the_repository_holds():
    for config in (REPO / "configs").glob("*.yaml"):
        text = config.read_text()
        assert "SPEC" not in text, config.name
        for cited in re.findall(r"docs/[\w.]+\.md", text):
            assert (REPO / cited).is_file(), f"{config.name} cites {cited}"


def test_shared_modules_read_top_to_bottom():
    # common/cli.py once held eight concerns in 400 lines; each concern now has its own file.
    for module in (REPO / "common").glob("*.py"):
        assert len(module.read_text().splitlines()) <= 250, f"{module.name}: split it by concern"


def test_every_run_of_the_suite_shows_its_slowest_tests():
    addopts = re.search(r'^addopts = "(.*)"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE)[1]
    assert "--durations=10" in addopts.split()
