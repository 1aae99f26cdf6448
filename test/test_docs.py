# Copyright 2026 mask2former_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Documentation checks: links resolve, the README's commands exist, pages stay readable.

- Every relative link and image of README.md, CHANGELOG.md and docs/*.md names a file that
  exists, and its ``#anchor`` names a heading of the target (GitHub's heading slugs).
- The README's two commands are the scripts the project provides: the demo command is an
  executable script that runs the demo, the test command is the one ``.ci/run`` runs.
- The README is a front page (at most 160 lines); no table row of a document is longer than
  250 characters (wider rows do not read in a browser).
"""

import os
from pathlib import Path
import re
import shlex

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'
DOCUMENTS = [README, ROOT / 'CHANGELOG.md', *sorted((ROOT / 'docs').glob('*.md'))]
README_MAX_LINES = 160
TABLE_ROW_MAX = 250

_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
_INLINE_CODE = re.compile(r'`[^`]*`')


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """Return (line number, line) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith('```'):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _link_targets(line: str) -> list[str]:
    """Return the targets of the links and images of a line (none inside inline code)."""
    return _LINK.findall(_INLINE_CODE.sub('', line))


def github_slug(heading: str) -> str:
    """Return GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def anchors(path: Path) -> set[str]:
    """Return the anchors of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    counts: dict[str, int] = {}
    result = set()
    for _, line in _outside_fences(path.read_text()):
        match = re.match(r'#{1,6}\s+(.*)', line)
        if match:
            slug = github_slug(match.group(1))
            repeat = counts.get(slug, 0)
            result.add(slug if repeat == 0 else f'{slug}-{repeat}')
            counts[slug] = repeat + 1
    return result


def broken_links(document: Path) -> list[str]:
    """Return one message per relative link of ``document`` whose file or anchor is missing."""
    problems = []
    for number, line in _outside_fences(document.read_text()):
        for target in _link_targets(line):
            if re.match(r'[a-z][a-z0-9+.-]*:', target):  # http:, https:, mailto: ...
                continue
            path_part, _, anchor = target.partition('#')
            resolved = (document.parent / path_part).resolve() if path_part else document
            where = f'{document.relative_to(ROOT)}:{number}: {target}'
            if not resolved.exists():
                problems.append(f'{where}: no such file')
            elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved):
                problems.append(f'{where}: no heading #{anchor} in {resolved.name}')
    return problems


@pytest.mark.parametrize('document', DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    assert document.is_file(), f'{document.relative_to(ROOT)} is missing'
    assert broken_links(document) == []


def test_every_document_in_docs_is_linked_from_the_readme():
    linked = {(README.parent / t.partition('#')[0]).resolve()
              for _, line in _outside_fences(README.read_text()) for t in _link_targets(line)}
    assert [p.name for p in DOCUMENTS[2:] if p.resolve() not in linked] == []


def _readme_commands() -> list[str]:
    """Return the command lines of the README's "The two commands" code block."""
    text = README.read_text()
    section = text.split('## The two commands', 1)[1]
    block = section.split('```bash', 1)[1].split('```', 1)[0]
    return [line.split('#', 1)[0].strip() for line in block.strip().splitlines()]


def _script_exec(path: Path) -> list[str]:
    """Return the words of the ``exec`` line of a shell script."""
    for line in path.read_text().splitlines():
        if line.startswith('exec '):
            return shlex.split(line)[1:]
    raise AssertionError(f'{path.relative_to(ROOT)} has no exec line')


def test_readme_names_the_two_commands_the_scripts_provide():
    demo, tests = _readme_commands()
    demo_script = ROOT / demo
    assert demo_script.is_file() and os.access(demo_script, os.X_OK), demo
    assert 'mask2former_ros_fixtures.demo' in _script_exec(demo_script)
    ci_command = _script_exec(ROOT / '.ci' / 'run')[0]
    assert tests == ci_command, f'README says {tests!r}, .ci/run runs {ci_command!r}'
    test_script = ROOT / tests
    assert os.access(test_script, os.X_OK)
    assert _script_exec(test_script)[1:4] == ['-m', 'pytest', 'test']


def test_readme_is_a_front_page():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f'README.md has {lines} lines'


def test_table_rows_read_in_a_browser():
    long_rows = [f'{d.relative_to(ROOT)}:{n}: {len(line)} characters'
                 for d in DOCUMENTS for n, line in enumerate(d.read_text().splitlines(), 1)
                 if line.lstrip().startswith('|') and len(line) > TABLE_ROW_MAX]
    assert long_rows == []
