"""The documentation a reader finds: a short README, docs/ whose every relative link resolves, config/README.md
generated from the schema, one version in the package, pyproject.toml and CITATION.cff, and the same pins in
environment.yml as in the requirements."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

import optrepro
from optrepro import configuration

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "config" / "README.md", REPO / "references" / "README.md",
         *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
README_LINES = 200


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or not resolved.is_relative_to(REPO):
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= README_LINES
    assert "make quick" in text and "make test" in text
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(REPO / "README.md")}
    unlinked = [p.relative_to(REPO) for p in (REPO / "docs").glob("*.md") if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not point to: {unlinked}"


def test_config_readme_is_generated_from_the_schema():
    assert (REPO / "config" / "README.md").read_text() == configuration.readme(), (
        "regenerate: python -m optrepro.configuration --readme > config/README.md")
    schema = yaml.safe_load(configuration.SCHEMA.read_text())
    for key in [*schema["properties"], "tasks.<task>.overrides", "data.datasets.<dataset>.sources"]:
        assert f"| `{key}` |" in configuration.readme()


def test_one_version_everywhere():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert project["version"] == citation["version"] == optrepro.__version__
    assert citation["license"] == project["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT")


def test_the_workflow_catalog_entry_points_at_what_exists():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["report"] is True
    assert (REPO / "workflow" / "Snakefile").is_file() and (REPO / "config" / "README.md").is_file()


def test_the_conda_environment_has_the_same_pins_as_the_requirements():
    def pins(text):
        return sorted(line.split("#")[0].strip() for line in text.splitlines() if "==" in line.split("#")[0])

    requirements = (REPO / "requirements.txt").read_text() + (REPO / "requirements-dev.txt").read_text()
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    [pip] = [entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict)]
    assert pins(requirements) == sorted(pip)
