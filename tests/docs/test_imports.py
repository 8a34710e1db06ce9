"""Imports run one way: the rule of docs/architecture.md ("The dependency rule"), enforced.

Every `crate::…`, `super::…` and `self::…` path in a file of `src/` (doc links included, test
code left out) is an arrow from that file to the file it names (a `mod.rs` re-exporting its
children is not: it is how the others reach them). The test fails, naming the file and line, on an arrow between top-level modules that
the architecture page's table does not allow, and on any circle among the files of `src/`.
Run with `.venv/bin/python tests/docs/test_imports.py` (`make docs-test`, part of `make test`).
"""

import re
import sys
import tempfile
import unittest
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

PATH = re.compile(r"\b(crate|super|self)::((?:\{[^}]*\}|\w+)(?:::(?:\{[^}]*\}|\w+))*)")


def allowed_imports(text):
    """{module: set of modules it may import}, from the table under "## The dependency rule"."""
    section = text.split("## The dependency rule", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rules[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[1]))
    if not rules:
        raise AssertionError("docs/architecture.md has no table under 'The dependency rule'")
    return rules


def module_of(src, path):
    """`src/resource/hold.rs` → ('resource', 'hold'); `src/resource/mod.rs` → ('resource',);
    `src/lib.rs` → ()."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def is_test_file(src, path):
    parts = path.relative_to(src).parts
    name = path.stem
    return name == "tests" or name.startswith("test_") or "tests" in parts[:-1] or name.endswith("_testdata")


def code_lines(text):
    """(line number, line) of the file's non-test code: `#[cfg(test)]` items are left out, and
    a `#[cfg(test)] mod tests {` block ends the file's code."""
    lines = text.split("\n")
    out = []
    skip_next = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if skip_next:
            skip_next = False
            if re.match(r"(pub(\(crate\))? )?mod \w+ \{", stripped):
                break
            continue
        if stripped.startswith("#[cfg(test)]"):
            skip_next = True
            continue
        out.append((number, line))
    return out


def expand(path):
    """`a::{b, c::d}` → ['a::b', 'a::c::d'] (one level of braces is all the code uses)."""
    found = re.match(r"^(.*?)\{([^}]*)\}(.*)$", path)
    if not found:
        return [path]
    head, inner, _ = found.groups()
    return [head + item.strip() for item in inner.split(",") if item.strip()]


def arrows(src):
    """[(from module, to module, file, line number, line)] for every file of `src`."""
    files = {}
    for path in sorted(src.rglob("*.rs")):
        if path.parts[-2:] == ("bin", path.name) or path.name == "main.rs" or is_test_file(src, path):
            continue
        files[module_of(src, path)] = path
    known = set(files)
    found = []
    for me, path in files.items():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in code_lines(text):
            targets = []
            for base, rest in PATH.findall(line):
                start = {"crate": (), "super": me[:-1], "self": me}[base]
                for item in expand(rest):
                    targets.append(start + tuple(p for p in item.split("::") if p))
            for target in targets:
                # The longest prefix that is a file of src/ is the file named.
                for cut in range(len(target), 0, -1):
                    if target[:cut] in known:
                        if target[:cut] != me:
                            found.append((me, target[:cut], path, number, line.strip()))
                        break
    return found


def name(module):
    return "/".join(module) or "lib"


def shown(path):
    """The file's path from its `src` folder on, as a reader looks it up."""
    parts = path.parts
    at = len(parts) - 1 - parts[::-1].index("src")
    return "/".join(parts[at:])


def forbidden(found, rules):
    problems = []
    for me, target, path, number, line in found:
        if not me or not target or me[0] == target[0]:
            continue
        if me[0] not in rules:
            problems.append(f"{shown(path)}:{number}: module `{me[0]}` has no row in the dependency rule")
            continue
        if target[0] not in rules[me[0]]:
            problems.append(f"{shown(path)}:{number}: `{me[0]}` may not import `{target[0]}` ({line})")
    return problems


def circles(found):
    """Each strongly connected group of more than one file, with the lines that tie it."""
    edges = defaultdict(set)
    where = {}
    for me, target, path, number, line in found:
        edges[me].add(target)
        where.setdefault((me, target), (path, number, line))
    index, low, stack, on, groups = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if v not in index:
            strong(v)
    problems = []
    for group in groups:
        members = set(group)
        ties = [
            f"{name(a)} -> {name(b)} at {shown(where[(a, b)][0])}:{where[(a, b)][1]} ({where[(a, b)][2]})"
            for a in sorted(members) for b in sorted(edges[a] & members)
        ]
        problems.append("import circle among " + ", ".join(sorted(name(m) for m in members)) + ": " + "; ".join(ties))
    return problems


class ImportsRunOneWay(unittest.TestCase):
    def test_no_arrow_the_architecture_page_forbids(self):
        rules = allowed_imports(ARCHITECTURE.read_text())
        problems = forbidden(arrows(ROOT / "src"), rules)
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_every_top_level_module_has_a_rule(self):
        rules = allowed_imports(ARCHITECTURE.read_text())
        modules = {p.stem if p.suffix == ".rs" else p.name for p in (ROOT / "src").iterdir()}
        modules -= {"lib", "main", "bin", "test_http", "trust_testdata"}
        self.assertEqual(sorted(modules - set(rules)), [], "add a row to docs/architecture.md")

    def test_no_circle_among_the_files_of_src(self):
        problems = circles(arrows(ROOT / "src"))
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_the_checks_find_a_circle_and_a_forbidden_arrow(self):
        """The checks above can fail: a tree with both faults is caught, with file and line."""
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            (src / "cfn").mkdir(parents=True)
            (src / "lib.rs").write_text("pub mod cfn;\npub mod aws;\n")
            (src / "cfn" / "mod.rs").write_text("pub mod request;\npub mod response;\n")
            (src / "cfn" / "request.rs").write_text("use super::response::Answer;\n")
            (src / "cfn" / "response.rs").write_text(
                "//! Answers.\nuse super::{request::Request};\n"
                "#[cfg(test)]\nmod tests {\n    use crate::aws::X;\n}\n"
            )
            (src / "aws.rs").write_text("use crate::cfn::request::Request;\n")
            found = arrows(src)
            loops = circles(found)
            self.assertEqual(len(loops), 1, loops)
            self.assertIn("cfn/request -> cfn/response at src/cfn/request.rs:1", loops[0])
            self.assertIn("cfn/response -> cfn/request at src/cfn/response.rs:2", loops[0])
            rules = {"cfn": set(), "aws": set()}
            bad = forbidden(found, rules)
            self.assertEqual(len(bad), 1, bad)
            self.assertIn("src/aws.rs:1: `aws` may not import `cfn`", bad[0])


if __name__ == "__main__":
    unittest.main()
