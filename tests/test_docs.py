"""The README stays short and its generated table true, and nothing cites a
document users do not have. (The linters run from .pre-commit-config.yaml,
not here.)"""
import os.path as osp
import subprocess

from conftest import ROOT, call_tool


def test_readme_is_short():
    with open(osp.join(ROOT, 'README.md')) as f:
        assert len(f.read().splitlines()) <= 300


def test_readme_headline_figures_match_the_records(capsys):
    proc = call_tool('headline_figures.py', '--check', capsys=capsys)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'headline figures up to date' in proc.stdout


def test_headline_rows_name_the_cpu_and_the_fastest_runtime():
    from harness.benchmark.headline import headline_rows
    rows = headline_rows([osp.join(ROOT, 'docs', 'benchmarks', name) for name
                          in ('cpu_b1g2_runtimes_b32.json',
                              'cpu_a0_runtimes_b1.json')])
    by_figure = {figure: (value, cpu, record)
                 for figure, value, cpu, record in rows}
    # the fastest serving vs torch fp32 eager of the same run
    value, cpu, record = by_figure[
        'RepVGG-B1g2 deploy/ort / RepVGG-B1g2 deploy/eager, batch 32, 224x224']
    assert value.startswith('1.40x') and cpu == 'AMD EPYC, AVX2'
    value, cpu, _ = by_figure['RepVGG-A0 deploy/openvino-bf16 / RepVGG-A0 '
                              'deploy/eager, batch 1, 224x224']
    assert value.startswith('4.08x') and cpu == 'AMD EPYC, AVX-512 BF16'


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
