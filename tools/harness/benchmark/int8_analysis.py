"""Why INT8 hurts (or not), layer by layer, on a deploy-form model.

For every conv / linear layer of the deploy model, in forward order:

* the fused kernel's statistics: min, max, range, standard deviation and
  ``max|w| / std`` (how far the largest weight sits out in the
  distribution, what per-tensor 8-bit scales suffer from);
* the SQNR of the kernel itself quantized to INT8 per output channel and
  per tensor (symmetric, 127 levels a side);
* the SQNR of the layer's output when its input (per-tensor asymmetric
  uint8, range from calibration) and its weights (per-channel int8) are
  fake-quantized with :func:`torch.fake_quantize_per_tensor_affine` /
  :func:`torch.fake_quantize_per_channel_affine`: *isolated* (fp32 input
  of the fp32 model, only this layer quantized) and *cumulative* (every
  layer quantized, the error of the layers before included);

plus the simulated INT8 model's top-1 and agreement with fp32. SQNR is
``10 log10(sum y^2 / sum (y - y_q)^2)`` in dB; 6 dB is one bit.

Activation ranges come from calibration images of the train split, the
SQNR from the val split (the images the evaluator sees).
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from repvgg_mm.runtime.evaluate import sqnr_from_energies

#: int8 weights, symmetric (narrow range as ORT / NNCF use for weights)
W_QMIN, W_QMAX = -127, 127
#: uint8 activations, asymmetric
A_QMIN, A_QMAX = 0, 255


def quantized_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of the convs and linears of ``model``."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def fake_quant_weight(weight: torch.Tensor,
                      per_channel: bool = True) -> torch.Tensor:
    """Symmetric INT8 of a kernel, per output channel or per tensor."""
    flat = weight.detach().reshape(len(weight), -1).abs()
    if per_channel:
        scale = (flat.amax(1) / W_QMAX).clamp_min(1e-12).float()
        zero = torch.zeros(len(weight), dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(
            weight, scale, zero, 0, W_QMIN, W_QMAX)
    scale = max(float(flat.max()) / W_QMAX, 1e-12)
    return torch.fake_quantize_per_tensor_affine(weight, scale, 0, W_QMIN,
                                                 W_QMAX)


def activation_qparams(lo: float, hi: float) -> Tuple[float, int]:
    """Scale and zero point of asymmetric uint8 for the range [lo, hi]
    (widened to hold 0, so zero is exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (A_QMAX - A_QMIN), 1e-12)
    zero = int(round(A_QMIN - lo / scale))
    return scale, max(A_QMIN, min(A_QMAX, zero))


def kernel_stats(weight: torch.Tensor) -> Dict[str, float]:
    w = weight.detach().double()
    std = float(w.std())
    stats = dict(w_min=float(w.min()), w_max=float(w.max()),
                 w_range=float(w.max() - w.min()), w_std=std,
                 w_absmax_over_std=float(w.abs().max()) / max(std, 1e-12))
    for key, per_channel in (('per_channel', True), ('per_tensor', False)):
        q = fake_quant_weight(weight.detach().float(), per_channel).double()
        stats[f'w_sqnr_{key}_db'] = sqnr_from_energies(
            float((w**2).sum()), float(((w - q)**2).sum()))
    return stats


def _layer_forward(module: nn.Module, x: torch.Tensor,
                   weight: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Conv2d):
        return F.conv2d(x, weight, module.bias, module.stride,
                        module.padding, module.dilation, module.groups)
    return F.linear(x, weight, module.bias)


class _Recorder:
    """Forward hooks that keep each layer's input and output of one batch."""

    def __init__(self, layers: Sequence[Tuple[str, nn.Module]]):
        self.inputs: Dict[str, torch.Tensor] = {}
        self.outputs: Dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(name))
                        for name, m in layers]

    def _hook(self, name):

        def hook(module, args, output):
            # clone: an in-place ReLU after the layer rewrites its output
            self.inputs[name] = args[0].detach().clone()
            self.outputs[name] = output.detach().clone()

        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def calibrate_ranges(graph: nn.Module, batches: Sequence[torch.Tensor]
                     ) -> Dict[str, Tuple[float, float]]:
    """Min and max of each layer's input over ``batches`` (min-max
    calibration, per tensor)."""
    layers = quantized_layers(graph)
    ranges: Dict[str, List[float]] = {}
    recorder = _Recorder(layers)
    try:
        for batch in batches:
            graph(batch)
            for name, x in recorder.inputs.items():
                lo, hi = float(x.min()), float(x.max())
                old = ranges.get(name, [lo, hi])
                ranges[name] = [min(old[0], lo), max(old[1], hi)]
    finally:
        recorder.remove()
    return {k: (v[0], v[1]) for k, v in ranges.items()}


def _fake_quant_model(graph: nn.Module, ranges) -> nn.Module:
    """A copy of ``graph`` with per-channel INT8 weights and per-tensor
    uint8 inputs at every conv / linear."""
    qgraph = copy.deepcopy(graph)
    for name, module in quantized_layers(qgraph):
        module.weight.data = fake_quant_weight(module.weight.data)
        scale, zero = activation_qparams(*ranges[name])

        def pre_hook(mod, args, scale=scale, zero=zero):
            return (torch.fake_quantize_per_tensor_affine(
                args[0], scale, zero, A_QMIN, A_QMAX), ) + args[1:]

        module.register_forward_pre_hook(pre_hook)
    return qgraph


@torch.no_grad()
def analyse(graph: nn.Module, calib_batches: Sequence[torch.Tensor],
            eval_batches: Sequence[Tuple[torch.Tensor, Optional[torch.Tensor]]]
            ) -> dict:
    """Per-layer statistics of ``graph`` (a module on graph inputs, e.g.
    :class:`repvgg_mm.runtime.graph.InferenceGraph`).

    ``eval_batches``: ``(inputs, labels or None)`` pairs. Returns
    ``dict(layers=[row per layer], top1_fp32, top1_int8_sim, agreement)``.
    """
    graph = graph.eval()
    ranges = calibrate_ranges(graph, calib_batches)
    qgraph = _fake_quant_model(graph, ranges)
    layers = quantized_layers(graph)
    qlayers = dict(quantized_layers(qgraph))
    sums = {name: [0.0, 0.0, 0.0] for name, _ in layers}  # signal, iso, cum
    correct_fp, correct_q, same, total = 0, 0, 0, 0
    fp_rec, q_rec = _Recorder(layers), _Recorder(list(qlayers.items()))
    try:
        for inputs, labels in eval_batches:
            out_fp = graph(inputs)
            out_q = qgraph(inputs)
            for name, module in layers:
                x, y = fp_rec.inputs[name], fp_rec.outputs[name]
                scale, zero = activation_qparams(*ranges[name])
                xq = torch.fake_quantize_per_tensor_affine(
                    x, scale, zero, A_QMIN, A_QMAX)
                y_iso = _layer_forward(module, xq, qlayers[name].weight)
                y64 = y.double()
                sums[name][0] += float((y64**2).sum())
                sums[name][1] += float(((y64 - y_iso.double())**2).sum())
                sums[name][2] += float(
                    ((y64 - q_rec.outputs[name].double())**2).sum())
            pred_fp, pred_q = out_fp.argmax(1), out_q.argmax(1)
            same += int((pred_fp == pred_q).sum())
            total += len(pred_fp)
            if labels is not None:
                correct_fp += int((pred_fp == labels).sum())
                correct_q += int((pred_q == labels).sum())
    finally:
        fp_rec.remove()
        q_rec.remove()
    rows = []
    for index, (name, module) in enumerate(layers):
        signal, iso, cum = sums[name]
        kind = (f'conv{module.kernel_size[0]}x{module.kernel_size[1]}/'
                f's{module.stride[0]}' if isinstance(module, nn.Conv2d)
                else 'linear')
        rows.append(dict(
            index=index, layer=name.removeprefix('model.'), kind=kind,
            out_channels=int(module.weight.shape[0]),
            **kernel_stats(module.weight),
            act_min=ranges[name][0], act_max=ranges[name][1],
            sqnr_isolated_db=sqnr_from_energies(signal, iso),
            sqnr_cumulative_db=sqnr_from_energies(signal, cum)))
    result = dict(layers=rows, num_eval_images=total,
                  agreement=same / max(total, 1))
    if correct_fp or correct_q:
        result.update(top1_fp32=100.0 * correct_fp / total,
                      top1_int8_sim=100.0 * correct_q / total)
    return result


def analyse_checkpoint(config: str, checkpoint: str, calib: int = 300,
                       cfg_options: Optional[dict] = None,
                       unsafe_load: bool = False) -> dict:
    """:func:`analyse` of a config + checkpoint on its own data:
    calibration on ``calib`` train images, statistics on the val split."""
    from repvgg_mm.apis.quantize import load_deploy_model
    from repvgg_mm.runtime.evaluate import (calibration_batches,
                                            evaluation_batches, graph_inputs)
    from repvgg_mm.runtime.graph import InferenceGraph
    from repvgg_mm.utils.config import load_config
    cfg = load_config(config, cfg_options)
    graph = InferenceGraph.of(
        load_deploy_model(cfg, checkpoint, unsafe_load))
    calib_batches = [torch.from_numpy(b) for b in calibration_batches(
        cfg, 'train', calib, progress=False)]
    _, loader = evaluation_batches(cfg)
    eval_batches = []
    for batch in loader:
        labels = [s.gt_label for s in batch['data_samples']
                  if 'gt_label' in s]
        eval_batches.append((torch.from_numpy(graph_inputs(batch['inputs'])),
                             torch.cat(labels) if labels else None))
    result = analyse(graph, calib_batches, eval_batches)
    result.update(config=config, checkpoint=checkpoint,
                  num_calibration_images=sum(len(b) for b in calib_batches))
    return result


# ----------------------------------------------------------------------
# presentation
TABLE_COLUMNS = (
    ('layer', 'layer', '{}'), ('kind', 'kind', '{}'),
    ('w range', 'w_range', '{:.3f}'), ('w std', 'w_std', '{:.4f}'),
    ('max|w|/std', 'w_absmax_over_std', '{:.1f}'),
    ('W SQNR ch', 'w_sqnr_per_channel_db', '{:.1f}'),
    ('W SQNR tensor', 'w_sqnr_per_tensor_db', '{:.1f}'),
    ('act range', None, None),
    ('SQNR iso', 'sqnr_isolated_db', '{:.1f}'),
    ('SQNR cum', 'sqnr_cumulative_db', '{:.1f}'),
)


def format_table(results: Dict[str, dict]) -> str:
    """One prettytable per model (name -> :func:`analyse` result)."""
    from prettytable import PrettyTable, TableStyle
    parts = []
    for name, result in results.items():
        table = PrettyTable(['model'] + [c[0] for c in TABLE_COLUMNS])
        table.set_style(TableStyle.MARKDOWN)
        for row in result['layers']:
            cells = []
            for _, key, fmt in TABLE_COLUMNS:
                if key is None:
                    cells.append(f'{row["act_min"]:.2f}..{row["act_max"]:.2f}')
                else:
                    cells.append(fmt.format(row[key]))
            table.add_row([name] + cells)
        summary = f'agreement of simulated INT8 with fp32: ' \
                  f'{100 * result["agreement"]:.2f} %'
        if 'top1_fp32' in result:
            summary += (f'; top-1 fp32 {result["top1_fp32"]:.2f}, simulated '
                        f'INT8 {result["top1_int8_sim"]:.2f}')
        parts.append(f'{name}: {summary}\n{table.get_string()}')
    return '\n\n'.join(parts)


def plot(results: Dict[str, dict], path: str) -> None:
    """Four panels per layer index: kernel std, max|w|/std, the calibrated
    input range and the output SQNR (isolated and cumulative), one line per
    model; written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from repvgg_mm.io.atomic import atomic_output
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    for name, result in results.items():
        rows = result['layers']
        x = [r['index'] for r in rows]
        axes[0].plot(x, [r['w_std'] for r in rows], marker='o', label=name)
        axes[1].plot(x, [r['w_absmax_over_std'] for r in rows], marker='o',
                     label=name)
        axes[2].plot(x, [r['act_max'] - r['act_min'] for r in rows],
                     marker='o', label=name)
        line, = axes[3].plot(x, [r['sqnr_cumulative_db'] for r in rows],
                             marker='o', label=f'{name} cumulative')
        axes[3].plot(x, [r['sqnr_isolated_db'] for r in rows], marker='x',
                     linestyle='--', color=line.get_color(),
                     label=f'{name} isolated')
    titles = ('fused kernel std', 'fused kernel max|w| / std',
              'layer input range (calibrated)', 'INT8 output SQNR (dB)')
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel('layer (forward order; last = classifier)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format='png')
    plt.close(fig)
