"""Import RepVGG weights from the official code, mmpretrain or timm.

    python tools/convert_weights.py SRC OUT --format official --arch b1g4

OUT holds ``state_dict`` (this project's keys: ``backbone.*``, ``head.fc.*``)
and ``meta``. Use it as the checkpoint of
``configs/repvgg-<arch>_8xb32_in1k.py``
(training-form sources) or with ``model.backbone.deploy=True`` (deploy-form
sources), or as a backbone initialisation::

    init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')

Converting is optional: SRC also loads as it is through ``init_cfg``,
``load_from`` and every tool (docs/conversion.md). Convert to keep one file
in this project's keys, or to get ``.safetensors`` weights into a ``.pth``.

SRC is read with ``torch.load(weights_only=True)`` (or as ``.safetensors``);
``--unsafe-load`` allows full unpickling of old checkpoints you trust.
"""

from harness.cli import ToolParser, run_tool
from repvgg_mm.apis.import_weights import import_weights
from repvgg_mm.converters.weight_import import FORMATS


def parse_args(argv=None):
    parser = ToolParser(
        description='Convert official / mmpretrain / timm RepVGG weights to '
        'this project\'s keys.')
    parser.add_argument('src', help='source checkpoint (.pth or .safetensors)')
    parser.add_argument(
        'out', help='checkpoint to write (missing parent folders are '
        'created; checked before any work)')
    parser.add_argument('--format', dest='fmt', required=True,
                        choices=FORMATS,
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
    print(f'reading {args.src} ...', flush=True)
    result = import_weights(args.src, args.out, args.fmt, args.arch,
                            unsafe_load=args.unsafe_load)
    head = (f'head with {result.num_classes} classes'
            if result.num_classes is not None else 'no head (backbone only)')
    hint = (' (use with model.backbone.deploy=True)'
            if result.form == 'deploy' else '')
    print(f'wrote {result.path}: {result.num_tensors} tensors, '
          f'RepVGG-{result.arch} in {result.form} form{hint}, {head}')


if __name__ == '__main__':
    run_tool(main)
