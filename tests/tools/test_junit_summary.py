"""tools/junit_summary.py: the summary names every failed test case (file, suite › class › name, first line
of its message) and closes with the counts. Run: python3 -m pytest tests/tools"""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = os.path.join(ROOT, "tools", "junit_summary.py")

PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
<testcase classname="tests.integration.test_server" name="test_ok" time="0.1"/>
<testcase classname="tests.integration.test_server" name="test_port[p-range]" time="0.1">
<failure message="AssertionError: -p 99999&#10;assert 1 == 2">long traceback</failure></testcase>
<testcase classname="tests.integration.test_hooks" name="test_setup_broke" time="0.1">
<error message="">
  fixture 'nope' not found
  more</error></testcase>
<testcase classname="tests.integration.test_hooks" name="test_skip" time="0"><skipped message="no"/></testcase>
</testsuite></testsuites>
"""

# ctest --output-junit: one suite, failures without a message attribute text of their own
CTEST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Linux-c++" tests="2" failures="1">
<testcase name="test_config" classname="test_config" time="0.2" status="fail"><failure message="Failed"/></testcase>
<testcase name="test_jwt" classname="test_jwt" time="0.1" status="run"/>
</testsuite>
"""

# tools/test's own one-case files (smoke runs)
BARE_XML = '<testsuite><testcase classname="bench" name="smoke-json"><failure/></testcase></testsuite>'


def run(tmp_path, files):
    paths = []
    for name, text in files.items():
        p = tmp_path / name
        p.write_text(text)
        paths.append(str(p))
    return subprocess.run([sys.executable, TOOL, *paths], capture_output=True, text=True)


def test_every_failure_is_named_with_its_first_message_line(tmp_path):
    r = run(tmp_path, {"plain-integration.xml": PYTEST_XML, "plain-unit.xml": CTEST_XML,
                       "smoke-json.xml": BARE_XML, "broken.xml": "<testsuite><testcase"})
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[:-1] == [
        "FAILED plain-integration.xml: pytest › tests.integration.test_server › test_port[p-range]: "
        "AssertionError: -p 99999",
        "FAILED plain-integration.xml: pytest › tests.integration.test_hooks › test_setup_broke: "
        "fixture 'nope' not found",
        "FAILED plain-unit.xml: Linux-c++ › test_config › test_config: Failed",
        "FAILED smoke-json.xml: bench › smoke-json: failure",
        lines[4],
    ], r.stdout
    assert lines[4].startswith("FAILED broken.xml: unreadable ("), lines[4]
    assert lines[-1] == "2 passed, 5 failed, 1 skipped"


def test_all_passed(tmp_path):
    r = run(tmp_path, {"a.xml": CTEST_XML.replace('<failure message="Failed"/>', "")})
    assert (r.returncode, r.stdout) == (0, "2 passed, 0 failed, 0 skipped\n")


def test_nothing_passed_is_a_failure(tmp_path):
    assert run(tmp_path, {"a.xml": "<testsuites/>"}).returncode == 1
