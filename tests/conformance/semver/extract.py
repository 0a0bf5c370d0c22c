#!/usr/bin/env python3
"""Transcribes the single-line table rows of Masterminds semver's version_test.go and
constraints_test.go into JSON, one file per Go test file.

Usage: extract.py <dir of github.com/Masterminds/semver/v3@vX.Y.Z> <version> <out dir>
Tables whose rows span several lines (TestNewVersionCheckError) are not transcribed.
"""
import json, re, sys

def go_literals(s):
    """Splits `"a", b, 1, "c,d"` into Python values (Go strings, bools, ints, identifiers)."""
    s = re.sub(r'MustParse\(("(?:[^"\\]|\\.)*")\)', r"\1", s)  # MustParse("v") -> "v"
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c in " \t,":
            i += 1
        elif c == '"':
            j, buf = i + 1, ""
            while s[j] != '"':
                if s[j] == "\\":
                    esc = s[j + 1]
                    buf += {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}[esc]
                    j += 2
                else:
                    buf += s[j]
                    j += 1
            out.append(buf)
            i = j + 1
        elif c == "`":
            j = s.index("`", i + 1)
            out.append(s[i + 1 : j])
            i = j + 1
        else:
            m = re.match(r"[-\w.]+", s[i:])
            tok = m.group(0)
            out.append(True if tok == "true" else False if tok == "false" else
                       None if tok == "nil" else int(tok) if re.fullmatch(r"-?\d+", tok) else {"ident": tok})
            i += len(tok)
    return out

def tables(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    result, func, seen, i = {}, None, {}, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"func (Test\w+)\(", line)
        if m:
            func, seen[m.group(1)] = m.group(1), 0
        m = re.match(r"\s*(\w+) := \[\]struct \{\s*(.*?)\s*(\}\{)?$", line)
        if func and m:
            seen[func] += 1
            name = func if seen[func] == 1 else f"{func}#{seen[func]}"
            cols, i = [], i + 1
            if m.group(2):  # struct fields on one line: `constraint, version, msg string`
                cols = [c.rstrip(",") for c in m.group(2).rsplit(" ", 1)[0].split(",")]
                cols = [c.strip() for c in cols]
            while not lines[i].strip().startswith("}{"):
                fields = lines[i].strip().rsplit(" ", 1)[0]  # `a, b, c string` or `a string`
                cols += [c.strip() for c in fields.split(",")] if "," in fields else [fields.split()[0]]
                i += 1
            rows, i = [], i + 1
            while not re.match(r"\s*\}$", lines[i]):
                m2 = re.match(r"\s*\{(.*)\},\s*(//.*)?$", lines[i])
                if m2:
                    rows.append(go_literals(m2.group(1)))
                i += 1
            if rows:
                result[name] = {"line": i + 1 - len(rows), "columns": cols, "rows": rows}
        i += 1
    return result

src, version, out = sys.argv[1], sys.argv[2], sys.argv[3]
for f in ("version_test.go", "constraints_test.go"):
    doc = {
        "_comment": f"Transcribed from github.com/Masterminds/semver/v3 {version} {f} "
                    "(module zip from proxy.golang.org; the repository mirror's 71f2b39 plus "
                    "length limits). Each table keeps the upstream test's name, columns and rows.",
        "upstream": {"repo": "https://github.com/Masterminds/semver", "version": version, "file": f},
        "tables": tables(f"{src}/{f}"),
    }
    with open(f"{out}/{f.replace('_test.go', '')}.json", "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
