"""The README stays short and true, the code passes the project's linters,
and nothing cites a document users do not have."""
import os.path as osp
import subprocess
import sys

from conftest import ROOT

CODE = ['repvgg_mm', 'tools', 'tests', 'configs']


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_readme_is_short():
    with open(osp.join(ROOT, 'README.md')) as f:
        assert len(f.read().splitlines()) <= 300


def test_readme_headline_figures_match_the_records():
    proc = _run('tools/headline_figures.py', '--check')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'headline figures up to date' in proc.stdout


def test_flake8_and_isort_agree_and_pass():
    flake8 = _run('-m', 'flake8', *CODE)
    assert flake8.returncode == 0, flake8.stdout[-3000:]
    isort = _run('-m', 'isort', '--check-only', '--diff', *CODE)
    assert isort.returncode == 0, isort.stdout[-3000:] + isort.stderr[-3000:]


def test_no_citation_of_a_document_outside_the_repository():
    files = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    citing = []
    for name in files:
        if not name.endswith(('.py', '.md', '.sh', '.cfg')):
            continue
        with open(osp.join(ROOT, name), encoding='utf-8') as f:
            text = f.read()
        if 'REFERENCE' + ' §' in text or 'REFERENCE' + '.md' in text:
            citing.append(name)
    assert citing == []
