#!/usr/bin/env python
"""Export a trained model to ONNX or OpenVINO IR, ready for a runtime.

RepVGG blocks are fused first (a training-form graph is never exported);
the config's data preprocessor (channel flip, mean/std) is inside the graph,
so the input is float32 images in 0-255, NCHW, in the channel order the
config's pipeline loads them (BGR for colour images). Outputs: classifier
class logits (no softmax); segmentor per-pixel class logits at the input
resolution (whole-image inference); detector raw head outputs (no box
decoding or NMS).

Examples::

    python tools/export.py configs/repvgg-a0_8xb32_in1k.py a0.pth a0.onnx \\
        --verify
    python tools/export.py configs/repvgg-a0_8xb32_in1k.py a0.pth a0.xml \\
        --dynamic --verify
"""
import argparse

from harness.cli import ToolParser, add_model_args, run_tool
from repvgg_mm.utils.verify import REL_TOL


def parse_args(argv=None):

    from repvgg_mm.runtime.onnx_export import OPSET_RANGE
    parser = ToolParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('config', help='the model\'s config (training or '
                        'deploy form)')
    parser.add_argument('checkpoint', help='training- or deploy-form '
                        'checkpoint, loaded strictly')
    parser.add_argument('out', help='*.onnx, or *.xml for OpenVINO IR (its '
                        '.bin is written beside it)')
    parser.add_argument('--format', dest='fmt', choices=['onnx', 'openvino'],
                        help='default: from the suffix of OUT')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default: the config\'s test size)')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--batch', type=int, default=1,
                      help='batch size of the graph (default 1)')
    size.add_argument('--dynamic', action='store_true',
                      help='leave batch, height and width free')
    low, high = OPSET_RANGE
    parser.add_argument('--opset', type=int, default=17,
                        help=f'ONNX opset, {low} to {high} (default 17)')
    parser.add_argument('--verify', action='store_true',
                        help='run the written model in its runtime and '
                        f'compare with PyTorch: max |d| <= {REL_TOL:g} '
                        'max |y| (every output finite)')
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_mm.apis import export_model
    result = export_model(
        args.config, args.checkpoint, args.out, fmt=args.fmt,
        shape=args.shape, batch=args.batch, dynamic=args.dynamic,
        opset=args.opset, verify=args.verify, cfg_options=args.cfg_options,
        unsafe_load=args.unsafe_load)
    print(f'wrote {", ".join(result.paths)} ({result.task}, '
          f'{result.num_fused_blocks} RepVGG blocks fused, input '
          f'{result.input_shape}{", dynamic N/H/W" if result.dynamic else ""}'
          f', {result.seconds:.1f} s)')
    if result.max_rel_err is not None:
        print(f'verified: max |d| = {result.max_abs_err:.3e} = '
              f'{result.max_rel_err:.3e} x max |y| (tolerance {REL_TOL:g})')
    return 0


if __name__ == '__main__':
    run_tool(main)
