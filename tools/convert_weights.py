"""Import RepVGG weights from the official code, mmpretrain or timm.

    python tools/convert_weights.py SRC OUT --format official --arch b1g4

OUT holds ``state_dict`` (this project's keys: ``backbone.*``, ``head.fc.*``)
and ``meta``. Use it as the checkpoint of ``configs/repvgg-<arch>_8xb32_in1k.py``
(training-form sources) or with ``model.backbone.deploy=True`` (deploy-form
sources), or as a backbone initialisation::

    init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')

SRC is read with ``torch.load(weights_only=True)`` (or as ``.safetensors``);
``--unsafe-load`` allows full unpickling of old checkpoints you trust.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from repvgg_mm.converters.weight_import import (  # noqa: E402
    FORMATS, arch_name, import_state_dict, load_source)
from repvgg_mm.utils.checkpoint_io import atomic_save  # noqa: E402
from repvgg_mm.utils.cli import ToolError, run_tool  # noqa: E402
from repvgg_mm.version import __version__  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert official / mmpretrain / timm RepVGG weights to '
        'this project\'s keys.')
    parser.add_argument('src', help='source checkpoint (.pth or .safetensors)')
    parser.add_argument('out', help='checkpoint to write')
    parser.add_argument('--format', required=True, choices=FORMATS,
                        help='layout of SRC')
    parser.add_argument('--arch', required=True,
                        help='RepVGG arch of SRC, e.g. a0, b1g4, d2se '
                        '("RepVGG-B1g4" and "repvgg_b1g4" work too)')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load SRC with full unpickling (weights_only=False). A pickle '
        'can execute arbitrary code: use only for files you trust that the '
        'safe loader refuses')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if osp.abspath(args.out) == osp.abspath(args.src) or (
            osp.exists(args.out) and osp.samefile(args.out, args.src)):
        raise ToolError(f'OUT "{args.out}" is the source file; the tool never '
                        f'overwrites its input. Choose another OUT.')
    arch = arch_name(args.arch)
    print(f'reading {args.src} ...', flush=True)
    source = load_source(args.src, unsafe=args.unsafe_load)
    state_dict, form = import_state_dict(source, args.format, arch)
    num_classes = (state_dict['head.fc.weight'].shape[0]
                   if 'head.fc.weight' in state_dict else None)
    meta = dict(repvgg_mm=dict(imported_from=osp.basename(args.src),
                               format=args.format, arch=arch, form=form,
                               version=__version__))
    atomic_save(dict(state_dict=state_dict, meta=meta), args.out)
    head = (f'head with {num_classes} classes' if num_classes is not None
            else 'no head (backbone only)')
    hint = (' (use with model.backbone.deploy=True)' if form == 'deploy'
            else '')
    print(f'wrote {args.out}: {len(state_dict)} tensors, RepVGG-{arch} in '
          f'{form} form{hint}, {head}')


if __name__ == '__main__':
    run_tool(main)
