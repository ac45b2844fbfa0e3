"""MkDocs hooks (mkdocs.yml `hooks:`): the site's pages that live outside docs/, and links that work
both in the repository and on the site.

README.md is the site's home page, ARCHITECTURE.md its architecture page, and the default model's
report, recipe and matrices (classifier/default/*.md, written by `make default-model`) are pages
under default-model/, each read from where it lives, never copied. A link in any page is written
as the repository sees it (`docs/at-the-rig.md` from README.md, `../classifier/default/report.md`
from a page in docs/); here it becomes the link to that page on the site. A link to a file that is
neither in docs/ nor one of these pages is left as written, so the strict build fails on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "classifier/default"

# repository path -> page (or file) on the site
INCLUDED = {
    "README.md": "index.md",
    "ARCHITECTURE.md": "architecture.md",
    f"{DEFAULT_MODEL}/report.md": "default-model/report.md",
    f"{DEFAULT_MODEL}/cross-generator.md": "default-model/cross-generator.md",
    f"{DEFAULT_MODEL}/compare.md": "default-model/compare.md",
    f"{DEFAULT_MODEL}/RECIPE.md": "default-model/recipe.md",
}
INCLUDED.update({f"{DEFAULT_MODEL}/{p.name}": f"default-model/{p.name}"
                 for p in sorted((ROOT / DEFAULT_MODEL).glob("*.png"))})
ORIGIN = {site: repo for repo, site in INCLUDED.items()}

LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def on_files(files, config):
    for repo_path, site_path in INCLUDED.items():
        source = ROOT / repo_path
        if not source.is_file():
            raise FileNotFoundError(f"{repo_path}: a page of the site (mkdocs.yml, docs/hooks.py) is missing")
        files.append(File.generated(config, site_path, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown, page, config, files):
    site_path = page.file.src_uri
    repo_path = ORIGIN.get(site_path, f"docs/{site_path}")
    return LINK.sub(lambda m: m[1] + _site_link(m[2], repo_path, site_path) + m[3], markdown)


def _site_link(target: str, repo_path: str, site_path: str) -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return target
    path, hash_, anchor = target.partition("#")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path))
    if resolved.startswith("docs/"):
        to = resolved[len("docs/"):]
    elif resolved in INCLUDED:
        to = INCLUDED[resolved]
    else:
        return target
    return posixpath.relpath(to, posixpath.dirname(site_path) or ".") + hash_ + anchor
