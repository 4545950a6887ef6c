"""Convert a trained RepVGG checkpoint to its deploy (fused) form.

    python tools/convert_deploy.py CONFIG CHECKPOINT OUT [--verify]

Works for any mmpretrain or mmsegmentation config whose model holds RepVGG
blocks (classifier, segmentor, ...; BN or SyncBN). Writes

* OUT: the deploy checkpoint (``meta`` kept; optimizer, schedulers, message
  hub and EMA training state dropped), written atomically;
* the deploy config (the original with ``deploy=True`` on every RepVGGMM
  dict), next to OUT as ``<OUT name>.py`` unless ``--out-config`` says where.

The checkpoint is read with ``torch.load(weights_only=True)``: it cannot
execute code. ``--unsafe-load`` turns that off for old pickles you trust.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

import repvgg_mm  # noqa: E402,F401  (registers RepVGGMM)
from repvgg_mm.converters.compare import compare_forms  # noqa: E402
from repvgg_mm.converters.config_model import (build_model,  # noqa: E402
                                               input_channels, input_size)
from repvgg_mm.converters.deploy_checkpoint import (  # noqa: E402
    deploy_checkpoint, load_state_dict_strict, repvgg_form,
    strip_wrapper_prefix)
from repvgg_mm.converters.deploy_config import (deploy_config,  # noqa: E402
                                                write_deploy_config)
from repvgg_mm.deploy import count_repvgg_blocks, switch_to_deploy  # noqa
from repvgg_mm.utils.checkpoint_io import (atomic_save,  # noqa: E402
                                           load_checkpoint_file,
                                           state_dict_of)
from repvgg_mm.utils.cli import ToolError, load_config, run_tool  # noqa

DEFAULT_REL_TOL = 1e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a RepVGG training checkpoint to the deploy '
        'form (one 3x3 conv per block) and write the matching config.')
    parser.add_argument('config', help='training config (mmpretrain/mmseg)')
    parser.add_argument('checkpoint', help='training checkpoint')
    parser.add_argument('out', help='deploy checkpoint to write')
    parser.add_argument(
        '--out-config',
        help='deploy config to write (default: OUT with the suffix .py)')
    parser.add_argument(
        '--verify', action='store_true',
        help='run both forms in eval mode on a random input and fail if '
        'their outputs differ by more than --tolerance')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help='input size for --verify (default: from the config)')
    parser.add_argument(
        '--tolerance', type=float, default=DEFAULT_REL_TOL,
        help='max error relative to the largest output for --verify '
        f'(default {DEFAULT_REL_TOL})')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load the checkpoint with full unpickling (weights_only=False). '
        'A pickle can execute arbitrary code: use only for checkpoints from a '
        'source you trust that the safe loader refuses')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. model.head.num_classes=10')
    return parser.parse_args(argv)


def _same_file(a: str, b: str) -> bool:
    return osp.abspath(a) == osp.abspath(b) or (
        osp.exists(a) and osp.exists(b) and osp.samefile(a, b))


def check_paths(args, out_config: str) -> None:
    if _same_file(args.out, args.checkpoint):
        raise ToolError(f'OUT "{args.out}" is the input checkpoint; the tool '
                        f'never overwrites its input. Choose another OUT.')
    if _same_file(out_config, args.config):
        raise ToolError(f'the deploy config would overwrite the input config '
                        f'"{args.config}". Choose another --out-config.')
    if _same_file(out_config, args.out):
        raise ToolError('--out-config and OUT are the same file.')


def check_form(state_dict, path: str, config: str) -> None:
    form = repvgg_form(state_dict)
    if form == 'deploy':
        raise ToolError(
            f'"{path}" is already in deploy form (its RepVGG blocks are '
            f'fused: *.branch_reparam.* keys), so there is nothing to '
            f'convert and nothing was written. Use it as it is with the '
            f'deploy config (e.g. tools/test.py {config} {path} '
            f'--cfg-options model.backbone.deploy=True).')
    if form == 'mixed':
        raise ToolError(
            f'"{path}" holds both fused (branch_reparam) and training-form '
            f'(branch_3x3) RepVGG blocks; it was not written by this '
            f'project\'s tools. Nothing was written.')


def verify(model, converted, cfg, args) -> None:
    (height, width), where = ((tuple(args.shape), '--shape')
                              if args.shape else input_size(cfg))
    shape = (1, input_channels(cfg), height, width)
    print(f'verifying on a random input of shape {shape} (size from '
          f'{where}) ...', flush=True)
    inputs = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    errors = compare_forms(model, converted, inputs)
    worst_abs = max(e[0] for e in errors)
    worst_rel = max(e[1] for e in errors)
    print(f'max abs difference: {worst_abs:.3e}; relative to the largest '
          f'output: {worst_rel:.3e} (tolerance {args.tolerance:g})')
    if not worst_rel <= args.tolerance:
        raise ToolError(
            f'the converted model differs from the training form by '
            f'{worst_rel:.3e} (relative), beyond --tolerance '
            f'{args.tolerance:g}. Nothing was written. Please report this '
            f'with the config.')
    print('verify: OK')


def main(argv=None):
    args = parse_args(argv)
    out_config = args.out_config or osp.splitext(args.out)[0] + '.py'
    check_paths(args, out_config)
    cfg = load_config(args.config, args.cfg_options)
    start = time.perf_counter()

    print(f'loading {args.checkpoint} ...', flush=True)
    checkpoint = load_checkpoint_file(args.checkpoint, unsafe=args.unsafe_load)
    state_dict = strip_wrapper_prefix(state_dict_of(checkpoint))
    print(f'building the model of {args.config} ...', flush=True)
    model = build_model(cfg)
    if count_repvgg_blocks(model) == 0:
        raise ToolError(
            f'the model of {args.config} ({type(model).__name__}) holds no '
            f'RepVGG block, so there is nothing to convert. Use a config '
            f'whose backbone is type="RepVGGMM".')
    check_form(state_dict, args.checkpoint, args.config)
    load_state_dict_strict(model, state_dict, args.checkpoint)

    model.eval()
    # --verify needs both forms; otherwise convert in place (no copy)
    converted = switch_to_deploy(model, inplace=not args.verify)
    print(f'converted {count_repvgg_blocks(converted, deployed=True)} RepVGG '
          f'blocks in {time.perf_counter() - start:.1f} s (build, load, '
          f'convert)', flush=True)
    deploy_cfg = deploy_config(cfg)
    layout = {k: v.shape for k, v in
              build_model(deploy_cfg, device='meta').state_dict().items()}
    if layout != {k: v.shape for k, v in converted.state_dict().items()}:
        raise ToolError('the deploy config does not build the converted '
                        'model (a RepVGG module outside a type="RepVGGMM" '
                        'dict?). Nothing was written.')
    if args.verify:
        verify(model, converted, cfg, args)

    atomic_save(deploy_checkpoint(checkpoint, converted, args.checkpoint),
                args.out)
    try:
        write_deploy_config(cfg, out_config)
    except BaseException:  # never leave a checkpoint without its config
        os.remove(args.out)
        raise
    size_mb = os.path.getsize(args.out) / 2**20
    print(f'wrote {args.out} ({size_mb:.1f} MiB) and {out_config}; total '
          f'{time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    run_tool(main)
