"""The repository stands alone: nothing in it points to a document outside it or to an issue number.

Code comments and documents used to cite sections of a design reference that lived beside the
repository, and issue numbers from the project's tracker; a maintainer who clones the repository
can follow neither. Facts now live in docs/ with their public sources. These tests fail when such
a citation comes back, and when a `docs/<page>.md#<anchor>` pointer names a page or heading that
does not exist. Run with the project's venv: `.venv/bin/python tests/docs/test_self_contained.py`
(`make docs-test`, part of `make test`).
"""

import re
import subprocess
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the project's own text lives. Cargo.lock and events/ hold no prose.
CHECKED = ["src", "emulator", "tests", "scripts", "docs", "README.md", "Makefile", "template.yaml",
           "Cargo.toml", ".ci"]
TEXT_SUFFIXES = {".rs", ".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".json", ".sh", ""}

# Each pattern is built from pieces so that this file does not match itself.
SECTION = "\u00a7"
FORBIDDEN = [
    # The word, a space and the section sign: sections of the outside reference document.
    ("a section of the outside reference", re.compile("reference " + SECTION)),
    # The word followed by "section" and a number, or by a number alone.
    ("a section of the outside reference", re.compile(r"\breference (?:section )?\d")),
    ("a path outside the repository", re.compile("shared" + "/")),
    ("an outside reference file", re.compile(
        "|".join(re.escape(name) for name in (
            "databricks-account-api" + ".md",
            "cloudformation-custom-resources" + ".md",
            "databricks-privatelink-services" + ".csv",
        )))),
    ("the outside document by its owner's name", re.compile(r"\bteam(?:'s)? (?:\w+ ){0,3}reference\b", re.I)),
    # The word followed by a number, with or without "#": numbers from the project's tracker.
    # Public GitHub issues are cited as owner/repo#N or by URL, which this does not match.
    ("an issue number", re.compile(r"\bissues? #?\d", re.I)),
]
# A bare section sign and number is the outside reference too, unless an RFC precedes it.
BARE_SECTION = re.compile(SECTION + r"\s*\d")
PUBLIC_STANDARD = re.compile(r"RFC \d+ $")

# The project's docs/ (as docs/<page>.md or ../docs/<page>.md), not another repository's docs/
# inside a URL.
DOC_LINK = re.compile(r"(?:(?<=\.\./)|(?<![\w/.-]))docs/([\w-]+\.md)(?:#([\w-]+))?")
# An anchor continuing a list after a full pointer: "docs/<page>.md#<one>`, `#<two>".
FOLLOW_ON_ANCHOR = re.compile(r"^`?, `#([\w-]+)`")


def tracked_files():
    """The files git tracks under CHECKED (all files there when git is unavailable)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *CHECKED], cwd=ROOT, check=True,
                             capture_output=True).stdout.decode()
        paths = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for c in CHECKED for p in ((ROOT / c).rglob("*") if (ROOT / c).is_dir()
                                              else [ROOT / c])]
    return sorted(p for p in paths
                  if p.is_file() and p.suffix in TEXT_SUFFIXES)


def read(path):
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def slug(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", read(page), flags=re.M)
    return {slug(h) for h in headings}


def citations(text):
    """(line number, what, excerpt) for every forbidden citation in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN:
            for match in pattern.finditer(line):
                found.append((number, what, line.strip()[:120]))
        for match in BARE_SECTION.finditer(line):
            if not PUBLIC_STANDARD.search(line[:match.start()]):
                found.append((number, "a section of the outside reference", line.strip()[:120]))
    return sorted(set(found))


class SelfContainedTest(unittest.TestCase):
    def setUp(self):
        self.files = tracked_files()

    def test_the_check_sees_the_code(self):
        names = {p.relative_to(ROOT).as_posix() for p in self.files}
        for expected in ("src/main.rs", "emulator/src/lib.rs", "README.md", "docs/account-api.md"):
            self.assertIn(expected, names)

    def test_nothing_cites_outside_documents_or_issue_numbers(self):
        problems = []
        for path in self.files:
            for number, what, excerpt in citations(read(path)):
                problems.append(f"{path.relative_to(ROOT)}:{number}: cites {what}: {excerpt}")
        self.assertEqual(problems, [], "\n" + "\n".join(problems) + "\nPoint to docs/<page>.md#<anchor>"
                         " or to a public source instead, and say what a test covers rather than"
                         " which issue asked for it.")

    def test_docs_links_name_existing_pages_and_headings(self):
        pages = {p.name: anchors(p) for p in (ROOT / "docs").glob("*.md")}
        problems = []
        for path in self.files:
            for number, line in enumerate(read(path).splitlines(), 1):
                for match in DOC_LINK.finditer(line):
                    page, anchor = match.groups()
                    wanted = [anchor] if anchor else []
                    follow = FOLLOW_ON_ANCHOR.match(line[match.end():])
                    if follow:
                        wanted.append(follow.group(1))
                    where = f"{path.relative_to(ROOT)}:{number}"
                    if page not in pages:
                        problems.append(f"{where}: docs/{page} does not exist")
                        continue
                    problems += [f"{where}: docs/{page} has no heading #{a}"
                                 for a in wanted if a not in pages[page]]
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_the_patterns_catch_what_they_are_for(self):
        # A check that cannot fail is no check: each shape once, and legitimate text not at all.
        bad = [
            "// Full overwrite (reference " + SECTION + "4).",
            "/// where 2443 also satisfies the relay (refer" + "ence section 8.2).",
            "//! the event shape (refer" + "ence 1.1)",
            "// ---- Networks (" + SECTION + "5) ----",
            "// region is unconfirmed: " + "shared" + "/reference/x.md",
            "# copied from databricks-privatelink-services" + ".csv",
            "//! faithful to the wire format in the team's account API refer" + "ence",
            "//! Faults through the real binary (iss" + "ue 6, parts 1-4)",
            "# Iss" + "ue 7's figures",
        ]
        for line in bad:
            self.assertTrue(citations(line), line)
        good = [
            "// The OAuth error shape (RFC 6749 " + SECTION + "5.2), not the account API's.",
            "/// (`docs/account-api.md#private-access-settings`)",
            "[aws-cloudformation/cloudformation-coverage-roadmap#1037](https://github.com/x/y/issues/1037)",
            "a secret shared from another account",
            "security reference architecture",
        ]
        for line in good:
            self.assertEqual(citations(line), [], line)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(verbosity=1, exit=False).result.wasSuccessful() else 1)
