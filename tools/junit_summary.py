#!/usr/bin/env python3
"""junit_summary.py FILE.xml...: list every failed test case, then close with 'N passed, N failed, N skipped'.

Each failure is one line: the file it came from (e.g. asan-integration.xml), then suite › class › name, then
the first line of its message (the failure's message attribute, else the first line of its text). An
unreadable file counts as a failure. Exit 1 on failures or when nothing passed."""
import os
import sys
import xml.etree.ElementTree as ET


def first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def cases(root):
    """(suite name, testcase element) for every test case, in document order."""
    if root.tag == "testcase":
        yield "", root
        return
    suites = [root] if root.tag == "testsuite" else []
    suites += [s for s in root.iter("testsuite") if s is not root]
    seen = set()
    for suite in suites:
        for case in suite.findall("testcase"):
            seen.add(id(case))
            yield suite.get("name", ""), case
    for case in root.iter("testcase"):  # cases outside any suite
        if id(case) not in seen:
            yield "", case


def summarize(paths, out=sys.stdout):
    """Print the failures and the closing line; returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    for path in paths:
        where = os.path.basename(path)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            print(f"FAILED {where}: unreadable ({e})", file=out)
            failed += 1
            continue
        for suite, case in cases(root):
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            if bad is not None:
                failed += 1
                name = " › ".join(p for p in (suite, case.get("classname", ""), case.get("name", "?")) if p)
                msg = first_line(bad.get("message")) or first_line(bad.text) or bad.tag
                print(f"FAILED {where}: {name}: {msg}", file=out)
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped", file=out)
    return passed, failed, skipped


if __name__ == "__main__":
    p, f, _ = summarize(sys.argv[1:])
    sys.exit(1 if f or not p else 0)
