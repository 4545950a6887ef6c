"""The three layers (docs/design.md): the plugin core needs torch and the mm
stack alone, the deployment layer (``repvgg_mm.runtime``) the ``[deploy]``
extra, and nothing in the package imports the harness (``tools/harness``).

Each check runs in a fresh interpreter: this one has imported everything.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import (ROOT, assert_succeeded, call_tool, run_tool,
                      write_image_folder, write_tiny_cls_config)

#: the ``[deploy]`` extra
DEPLOY = ('onnx', 'onnxruntime', 'openvino', 'nncf')
#: what the plugin core must not import: the extra, the harness's
#: dependencies, the harness
NOT_CORE = DEPLOY + ('sklearn', 'matplotlib', 'harness')

IMPORT_CORE = """
import sys
import repvgg_mm
from repvgg_mm.apis import (convert_checkpoint, import_weights, test_model,
                            train_model)
import repvgg_mm.converters.config_model, repvgg_mm.engine.config_checks
import repvgg_mm.io.weights, repvgg_mm.utils.verify
print(sorted({name.split('.')[0] for name in sys.modules}
             & set(sys.argv[1:])))
"""

#: made unimportable before anything else, then the core API's jobs
BLOCKED_API = """
import json, sys
blocked = sys.argv[1].split(',')
for name in blocked:
    sys.modules[name] = None
config, work = sys.argv[2], sys.argv[3]
from repvgg_mm.apis import convert_checkpoint, test_model, train_model
from repvgg_mm.errors import MissingDependency
checkpoint = train_model(config, work_dir=work + '/train')
conversion = convert_checkpoint(config, checkpoint, work + '/deploy.pth',
                                verify=True)
metrics = test_model(conversion.config, conversion.checkpoint,
                     work_dir=work + '/test')
try:
    from repvgg_mm.apis import export_model  # noqa: F401
    missing = None
except MissingDependency as exc:
    missing = str(exc)
print(json.dumps(dict(
    checkpoint=checkpoint, deploy=conversion.checkpoint, metrics=metrics,
    missing=missing, still_blocked=[sys.modules[n] is None for n in blocked]
)))
"""


def _python(code, *args, cwd=ROOT):
    proc = subprocess.run([sys.executable, '-c', code, *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=ROOT,
                                   OMP_NUM_THREADS='1'), timeout=600)
    assert_succeeded(proc)
    return proc.stdout.strip().splitlines()[-1]


def test_core_imports_no_extra_and_no_harness():
    assert _python(IMPORT_CORE, *NOT_CORE) == '[]'


#: lines of the repvgg_mm modules a fresh ``import repvgg_mm`` loads
CORE_LINES = """
import sys
import repvgg_mm
print(sum(sum(1 for _ in open(m.__file__))
          for n, m in list(sys.modules.items())
          if n.startswith('repvgg_mm') and getattr(m, '__file__', None)))
"""


def test_the_package_stays_small():
    """What an mm config's custom_imports loads <= 3,000 lines, the whole
    package <= 5,500, every module <= 300 (docs/design.md)."""
    assert int(_python(CORE_LINES)) <= 3000
    sizes = {}
    for folder, _, names in os.walk(osp.join(ROOT, 'repvgg_mm')):
        for name in names:
            if name.endswith('.py'):
                with open(osp.join(folder, name)) as f:
                    sizes[osp.join(folder, name)] = len(f.readlines())
    assert sum(sizes.values()) <= 5500
    assert max(sizes.values()) <= 300, max(sizes, key=sizes.get)


def _tiny_run(tmp_path):
    """A one-step (4 images, batch 4, one epoch) tiny classifier config."""
    data = write_image_folder(str(tmp_path / 'data'), images_per_class=2)
    return write_tiny_cls_config(str(tmp_path / 'tiny.py'), data, epochs=1,
                                 batch_size=4)


@pytest.mark.slow
def test_core_api_works_without_the_deploy_extra(tmp_path):
    config = _tiny_run(tmp_path)
    work = tmp_path / 'work'
    result = json.loads(_python(BLOCKED_API, ','.join(DEPLOY), config, work))
    assert result['still_blocked'] == [True] * len(DEPLOY)
    assert result['checkpoint'] == str(work / 'train' / 'epoch_1.pth')
    assert osp.isfile(result['deploy'])
    assert 0 <= result['metrics']['accuracy/top1'] <= 100
    # the deployment layer: one error naming the extra
    assert result['missing'].startswith('deployment (ONNX / OpenVINO export')
    assert 'pip install "repvgg_mm[deploy]"' in result['missing']


@pytest.mark.slow
def test_core_tools_work_without_the_deploy_extra(tmp_path):
    config = _tiny_run(tmp_path)
    work = tmp_path / 'work'
    run_tool('train.py', config, '--work-dir', work, block=DEPLOY,
             check=True)
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    deploy = tmp_path / 'deploy.pth'
    log = run_tool('convert_deploy.py', config, checkpoint, deploy,
                   '--verify', block=DEPLOY, check=True).stdout
    assert 'verify: OK' in log and deploy.is_file()
    proc = run_tool('test.py', tmp_path / 'deploy.py', deploy, '--work-dir',
                    tmp_path / 'test', block=DEPLOY, check=True)
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    # the deployment tools: one error naming the extra, no traceback
    for tool, out in (('export.py', 'm.onnx'), ('quantize.py', 'm.xml'),
                      ('deploy.py', 'served')):
        proc = run_tool(tool, tmp_path / 'deploy.py', deploy, tmp_path / out,
                        block=DEPLOY)
        assert proc.returncode == 2, (tool, proc.stderr[-2000:])
        assert proc.stderr.startswith('error: deployment (ONNX / OpenVINO')
        assert 'pip install "repvgg_mm[deploy]"' in proc.stderr
        assert 'Traceback' not in proc.stderr
        assert not (tmp_path / out).exists()


def test_library_errors_name_arguments_and_the_cli_names_flags(tmp_path):
    """The package names its API's arguments (`opset=5`); only the CLI
    layer turns them into the tool's flags (``--opset 5``)."""
    from harness.cli import ToolParser, as_flags
    from repvgg_mm.errors import ConfigError
    from repvgg_mm.runtime.onnx_export import check_opset
    with pytest.raises(ConfigError) as info:
        check_opset(5)
    assert str(info.value).startswith('`opset=5` is not supported')
    parser = ToolParser()
    parser.add_argument('out')
    parser.add_argument('--opset', type=int)
    parser.add_argument('--json', dest='json_out')
    parser.add_argument('--unsafe-load', action='store_true')
    parser.parse_args(['x.onnx'])
    assert as_flags(str(info.value), ToolParser.last).startswith(
        '--opset 5 is not supported')
    assert as_flags('`json_out` "a" and `out` and `unsafe_load=True`; '
                    '`other`, `opset`, `unsafe_load=False`', parser) == (
        '--json "a" and OUT and --unsafe-load; `other`, --opset, '
        'without --unsafe-load')
    # through a tool: exit 2, the flag named, no traceback
    proc = call_tool('export.py', osp.join(ROOT, 'configs', 'demo',
                                           'repvgg-tiny_digits.py'),
                     'missing.pth', tmp_path / 'm.onnx', '--opset', '5')
    assert proc.returncode == 2 and '--opset 5 is not supported' in \
        proc.stderr and '`' not in proc.stderr, proc.stderr


def _package_modules():
    """``{module name: (path, ast)}`` of every module of the package."""
    import ast
    modules = {}
    for folder, _, names in os.walk(osp.join(ROOT, 'repvgg_mm')):
        for name in names:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                module = osp.relpath(path, ROOT)[:-3].replace(os.sep, '.')
                with open(path) as f:
                    modules[module.removesuffix('.__init__')] = (
                        path, ast.parse(f.read()))
    return modules


def test_no_import_cycle_and_every_late_import_says_why():
    """Module-level imports form no cycle; an import inside a function
    (an optional heavy dependency) carries a ``# lazy:`` reason; the CLI's
    ToolError is not the library's."""
    import ast
    modules = _package_modules()
    graph = {}
    for module, (path, tree) in modules.items():
        package = module if path.endswith('__init__.py') else \
            module.rsplit('.', 1)[0]
        targets = set()
        top = [n for node in tree.body for n in (
            node.body if isinstance(node, ast.Try) else [node])]
        for node in top:  # module level: what runs on import
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split('.')[:len(package.split('.')) -
                                          node.level + 1]
                target = '.'.join(base + [node.module or ''])
                for alias in node.names:
                    full = f'{target.rstrip(".")}.{alias.name}'
                    targets.add(full if full in modules else
                                target.rstrip('.'))
        graph[module] = {t for t in targets if t in modules and t != module}
        lines = open(path).read().splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    before = lines[func.lineno - 1:node.lineno]
                    assert any('# lazy:' in line for line in before), \
                        f'{path}:{node.lineno} imports late without a reason'
        assert 'ToolError' not in open(path).read(), path
    seen, stack = set(), []

    def visit(module):
        assert module not in stack, f'import cycle: {stack + [module]}'
        if module in seen:
            return
        stack.append(module)
        for target in graph[module]:
            visit(target)
        stack.pop()
        seen.add(module)

    for module in graph:
        visit(module)
