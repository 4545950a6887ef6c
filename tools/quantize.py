"""Post-training INT8 of a RepVGG checkpoint, calibrated on real images.

    python tools/quantize.py CONFIG CHECKPOINT OUT [--backend openvino|
        onnxruntime] [--calib N] [--split train|val] [--method M] [--eval]

Exports the deploy form (the graph holds the config's data preprocessor),
calibrates on N images of the split read through the config's dataset and
evaluation pipeline (default: train, so the val split stays unseen) and
writes OUT atomically: ``.xml`` (+ ``.bin``) for OpenVINO, ``.onnx`` for ONNX
Runtime. ``--eval`` runs the config's evaluator on the fp32 and the INT8
graph over the val split and prints both metrics and the share of identical
predictions.
"""
import json

from harness.cli import ToolParser, add_model_args, run_tool


def parse_args(argv=None):
    # inside run_tool: without the [deploy] extra, one `error:` line
    from repvgg_mm.runtime.quantize import METHODS
    from repvgg_mm.runtime.session import BACKENDS
    parser = ToolParser(
        description='INT8 post-training quantization of a RepVGG '
        'checkpoint with OpenVINO+NNCF or ONNX Runtime.')
    parser.add_argument('config', help='model config (training or deploy)')
    parser.add_argument('checkpoint', help='training or deploy checkpoint')
    parser.add_argument('out', help='INT8 model to write (.xml for '
                        'openvino, .onnx for onnxruntime)')
    parser.add_argument('--backend', default='openvino',
                        help=f'one of {", ".join(BACKENDS)} (default '
                        f'openvino)')
    parser.add_argument('--calib', type=int, default=300,
                        help='number of calibration images (default 300)')
    parser.add_argument('--split', default='train',
                        help='split the calibration images come from '
                        '(train, val or test; default train)')
    methods = '; '.join(f'{b}: {", ".join(m)}' for b, m in METHODS.items())
    parser.add_argument('--method', help=f'calibration setting ({methods}; '
                        f'default: the first)')
    parser.add_argument('--per-tensor-weights', action='store_true',
                        help='one INT8 scale per weight tensor instead of '
                        'per output channel (for comparison)')
    parser.add_argument('--eval', action='store_true', dest='evaluate',
                        help='evaluate the fp32 and the INT8 graph on the '
                        'val split with the config\'s evaluator')
    parser.add_argument('--json', dest='json_out',
                        help='also write the result to this .json file '
                        '(checked before any work)')
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_mm.apis import quantize_model
    result = quantize_model(
        args.config, args.checkpoint, args.out, backend=args.backend,
        calib=args.calib, split=args.split, method=args.method,
        per_channel=not args.per_tensor_weights,
        evaluate=args.evaluate, cfg_options=args.cfg_options,
        unsafe_load=args.unsafe_load, json_out=args.json_out)
    weights = 'per-channel' if result['per_channel_weights'] else \
        'per-tensor'
    print(f'wrote {result["int8_path"]} ({result["backend"]}, '
          f'{result["method"]}, {weights} weights, calibrated on '
          f'{result["num_calibration_images"]} {result["split"]} images)')
    if args.evaluate:
        label = 'mIoU' if result['metric'] == 'mIoU' else 'top-1'
        for form in ('fp32', 'int8'):
            value = result[f'top1_{form}']
            if value is None:  # another metric: print them all
                print(f'{form} metrics: {result["metrics"][form]}')
            else:
                print(f'{form} {label}: {value:.2f}')
        print(f'agreement: {100 * result["agreement"]:.2f} % of '
              f'{result["num_val_images"]} images '
              f'(output SQNR {result["output_sqnr_db"]:.1f} dB)')
    if not args.json_out:
        print(json.dumps(result['seconds']))


if __name__ == '__main__':
    run_tool(main)
