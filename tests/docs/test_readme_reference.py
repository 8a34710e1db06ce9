"""The README's reference tables cover what the template and the function take and give, and its
links to its own headings resolve.

A parameter, output, resource property or `Fn::GetAtt` attribute added without a row in the
README's tables, a row left behind for one that no longer exists, or a table broken by a stray
blank line (the rows after it render as a paragraph of pipes) fails here. Run with the project's
venv: `.venv/bin/python tests/docs/test_readme_reference.py` (`make docs-test`, part of
`make test`).
"""

import re
import sys
import unittest
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TEMPLATE = ROOT / "template.yaml"
PROPERTIES = ROOT / "src" / "resource" / "properties.rs"
CONVERGE = ROOT / "src" / "resource" / "converge.rs"

# The first header cell of each reference table, and what its rows must name.
PARAMETERS = "Parameter"
OUTPUTS = "Output"
PROPERTIES_TABLE = "Property"
ATTRIBUTES = "`Fn::GetAtt` attribute"
# CloudFormation's own properties the function accepts besides its own (src/cfn/properties.rs).
TEMPLATE_LEVEL_PROPERTIES = {"ServiceTimeout"}
SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")


def cells(row):
    """The cells of a Markdown table row; a `|` inside backticks or escaped is text, not a border."""
    out, current, in_code, i = [], "", False, 0
    row = row.strip()
    while i < len(row):
        ch = row[i]
        if ch == "\\" and i + 1 < len(row) and row[i + 1] == "|":
            current += "|"
            i += 2
            continue
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            out.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    out.append(current.strip())
    # A row starts and ends with a border: the text before the first and after the last is empty.
    return out[1:-1]


def tables(text):
    """(line number, header cells, rows of cells, problems) for each run of lines starting with `|`
    outside code blocks."""
    found = []
    lines = text.splitlines()
    fenced = False
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not lines[i].startswith("|"):
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].startswith("|"):
            i += 1
        block = lines[start:i]
        header = cells(block[0])
        problems = []
        if len(block) < 2 or not SEPARATOR.match(block[1].strip()):
            problems.append(
                f"README.md:{start + 1}: a table without a header separator: a blank line or "
                f"other text broke a table above it, or a row stands alone ({block[0][:60]!r})"
            )
            rows = [cells(r) for r in block]
        else:
            rows = [cells(r) for r in block[2:]]
            separator = cells(block[1])
            if len(separator) != len(header):
                problems.append(f"README.md:{start + 2}: the separator has {len(separator)} cells, the header {len(header)}")
        for n, row in enumerate(rows):
            if len(row) != len(header):
                problems.append(
                    f"README.md:{start + n + 3}: {len(row)} cells in a table of {len(header)} columns"
                )
        found.append((start + 1, header, rows, problems))
    return found


def names_in(cell):
    """The names a first cell documents: its `code` spans shaped like a name (not
    `<stack>-FunctionArn`, which says what the export is called), or its text."""
    spans = re.findall(r"`([^`]+)`", cell)
    if not spans:
        return {cell.strip()}
    return {s for s in spans if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", s)}


def documented(readme_tables, first_header):
    """Every name in the first column of the tables whose first header cell is `first_header`."""
    names = set()
    matched = False
    for _, header, rows, _ in readme_tables:
        if header and header[0] == first_header:
            matched = True
            for row in rows:
                if row:
                    names |= names_in(row[0])
    return names if matched else None


def slug(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def template():
    return cfn_yaml.load(str(TEMPLATE))


def resource_properties():
    names = set(re.findall(r'pub const \w+: &str = "(\w+)";', PROPERTIES.read_text()))
    return names | TEMPLATE_LEVEL_PROPERTIES


def attributes():
    return set(re.findall(r'"(\w+)"\.to_string\(\)', CONVERGE.read_text()))


class ReadmeReferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tables = tables(README.read_text(encoding="utf-8"))
        cls.template = template()

    def check(self, first_header, wanted, what):
        names = documented(self.tables, first_header)
        self.assertIsNotNone(names, f"README.md has no table whose first column is {first_header!r}")
        missing = sorted(wanted - names)
        stale = sorted(names - wanted)
        self.assertEqual(missing, [], f"{what} missing from the README's {first_header!r} table")
        self.assertEqual(stale, [], f"the README's {first_header!r} table names {what} that do not exist")

    def test_tables_are_whole(self):
        problems = [p for *_, found in self.tables for p in found]
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_every_template_parameter_has_a_row(self):
        self.check(PARAMETERS, set(self.template["Parameters"]), "template parameters")

    def test_every_template_output_has_a_row(self):
        self.check(OUTPUTS, set(self.template["Outputs"]), "template outputs")

    def test_every_resource_property_has_a_row(self):
        wanted = resource_properties()
        self.assertIn("WorkspaceIds", wanted, "the scan of properties.rs found nothing: it is broken")
        self.check(PROPERTIES_TABLE, wanted, "resource properties")

    def test_every_attribute_has_a_row(self):
        wanted = attributes()
        self.assertIn("ReadyAfter", wanted, "the scan of converge.rs found nothing: it is broken")
        self.check(ATTRIBUTES, wanted, "Fn::GetAtt attributes")

    def test_links_within_the_readme_name_its_headings(self):
        # Sections move as the README grows; a link to a heading that moved away breaks silently.
        text = README.read_text(encoding="utf-8")
        headings = {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M)}
        broken = sorted({a for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in headings})
        self.assertEqual(broken, [], "README.md links to headings it does not have")

    def test_the_checks_catch_what_they_are_for(self):
        # A check that cannot fail is no check.
        broken = "| A | B |\n|---|---|\n| `x` | y |\n\n| `z` | w |\n"
        self.assertTrue([p for *_, found in tables(broken) for p in found])
        ragged = "| A | B |\n|---|---|\n| `x` | y | z |\n"
        self.assertTrue([p for *_, found in tables(ragged) for p in found])
        whole = "| A | B |\n|---|---|\n| `x` (as `<s>-x`), `y` | a `p|q` cell |\n"
        self.assertEqual([p for *_, found in tables(whole) for p in found], [])
        self.assertEqual(documented(tables(whole), "A"), {"x", "y"})
        self.assertEqual(documented(tables("```\n| A |\n```\n"), "A"), None)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(verbosity=1, exit=False).result.wasSuccessful() else 1)
