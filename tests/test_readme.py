"""The configs table (docs/configs.md) against the configs and refine_jax/paper.py: every config file is listed, and
each row's "paper numbers" are its configs' paper rows, in the order the table gives them; the README front door
stays short and links what moved to docs/."""
from __future__ import annotations

import glob
import importlib
import os
import re

import pytest

from refine_jax import paper as paper_lib
from tests.conftest import ROOT

NUMBER = re.compile(r'-?\d+(?:\.\d+)?')


def _config_rows() -> list[list[str]]:
  """The cells of each row of docs/configs.md's table whose first column names config files."""
  section = open(os.path.join(ROOT, 'docs', 'configs.md')).read().split('\n## Fields\n', 1)[0]
  rows = []
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if line.startswith('| `') and cells[0].endswith('.py`'):
      rows.append(cells)
  return rows


def _files(cell: str) -> list[str]:
  return re.findall(r'`([a-z0-9_]+)\.py`', cell)


def _config(name: str):
  return importlib.import_module(f'configs.{name}').get_config()


def _expected(name: str) -> list[float]:
  """The paper's numbers of the config's row: its table's columns in paper.COLUMNS order, the refined columns
  only for a config with a refine phase; [] for an extension."""
  c = _config(name)
  if not c.paper_row:
    return []
  row = paper_lib.row(c.paper_row)
  refined = 'refine' in tuple(c.phase_order)
  cols = [k for k in paper_lib.COLUMNS[row.table] if refined or not k.startswith('ref')]
  return [row.values[k] for k in cols if k in row.values]


def test_every_config_file_is_in_the_table():
  listed = [f for cells in _config_rows() for f in _files(cells[0])]
  files = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not os.path.basename(p).startswith(('_', 'common')))
  assert sorted(listed) == files, 'docs/configs.md table vs configs/'
  assert len(listed) == len(set(listed)), 'a config listed twice'


@pytest.mark.parametrize('cells', _config_rows(), ids=lambda cells: _files(cells[0])[0])
def test_paper_numbers_are_the_paper_rows(cells):
  names, row_cell, numbers = _files(cells[0]), cells[1], cells[2]
  if names == ['paper']:
    return  # the builder: any row
  rows = [_config(n).paper_row for n in names]
  want = [v for n in names for v in _expected(n)]
  # "C10" / "C100" and "T1 = 400" style labels are not numbers of the paper's tables.
  got = [float(v) for v in NUMBER.findall(re.sub(r'\bC10{1,2}\b|T\d = \d+|T\d / T\d', '', numbers))]
  assert got == pytest.approx(want, abs=1e-9), (names, numbers)
  if not any(rows):
    assert numbers == '—', (names, numbers)
    assert row_cell == '—' or 'extension' in row_cell or 'no numbers' in row_cell, (names, row_cell)
  else:
    tables = {paper_lib.row(r).table for r in rows if r}
    assert all(f'Table {t}' in row_cell for t in tables), (names, row_cell)


def test_no_doc_says_a_table_could_not_be_read():
  """The paper's tables are all transcribed (refine_jax/paper.py); no doc may say one was unreadable."""
  phrase = 'could not ' + 'be read'
  hits = []
  for pattern in ('*.md', 'docs/*.md', 'bench/*.md', 'configs/*.py', 'refine_jax/**/*.py'):
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
      if phrase in open(path, encoding='utf-8').read().lower():
        hits.append(os.path.relpath(path, ROOT))
  assert hits == []


def test_rows_without_configs_are_listed_with_their_numbers():
  """Table 2, Table 6 and the P-DARTS number: the README's small table gives paper.py's values, in order."""
  text = open(os.path.join(ROOT, 'docs', 'configs.md')).read().split('\n## Fields\n', 1)[0]
  cells = {line.split('|')[1].strip().split(',')[0].split(' (')[0]: line.split('|')[2]
           for line in text.splitlines() if line.startswith(('| Table 2', '| Table 6', '| text, P-DARTS'))}
  assert set(cells) == {'Table 2', 'Table 6', 'text'}
  for key, table in (('Table 2', 2), ('Table 6', 6), ('text', 0)):
    rows = [r for r in paper_lib.rows(table) if table or r.model == 'pdarts']
    want = [r.values[c] for r in rows for c in paper_lib.COLUMNS[table] if c in r.values]
    got = [float(v) for v in NUMBER.findall(cells[key])]
    assert got == want, (key, cells[key])


def test_the_readme_is_a_short_front_door_whose_links_resolve():
  """At most 160 lines; every relative link (docs/, bench/) names a file that exists; every config pattern of its
  reproduce table names at least one config file."""
  text = open(os.path.join(ROOT, 'README.md')).read()
  assert len(text.splitlines()) <= 160, len(text.splitlines())
  links = re.findall(r'\]\(([^)#:]+)\)', text)
  assert links and all(os.path.isfile(os.path.join(ROOT, l)) for l in links), links
  for cell in re.findall(r'`((?:cifar|tinyimagenet|imagenet)[^`]*\.py)`', text):
    pattern = re.sub(r'\{([^}]*)\}', lambda m: '(' + m.group(1).replace(',', '|') + ')', cell).replace('*', '.*')
    names = [os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))]
    assert any(re.fullmatch(pattern, n) for n in names), cell
