"""The deploy job's documents (``tools/deploy.py``, the digits demo):
``report.md`` (one table, best first), ``model_card.md`` (how to feed and
run the shipped model) and the speed-vs-accuracy plot, all made from the
report :func:`repvgg_mm.apis.deploy_model` returns."""
import json
import os.path as osp

from .benchmark.report import format_summary

#: table order: what to ship first, what could not run last
STATUS_ORDER = ('chosen', 'tied', 'slower', 'rejected', 'baseline', 'failed')


def _fmt(value, spec: str = '.2f') -> str:
    """``value`` (a summary: its median) formatted, ``-`` when None."""
    if isinstance(value, dict):
        value = value.get('median')
    return '-' if value is None else format(value, spec)


def format_table(report: dict) -> str:
    """The Markdown table of every serving."""
    name = report['metric_name'] or 'metric'
    lines = [f'| | serving | precision | {name} | drop | images/s | '
             f'vs {report["baseline"]} | GMAC/s | % of ceiling | same '
             f'prediction | why |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in sorted(report['servings'], key=lambda r: (
            STATUS_ORDER.index(r.get('status', 'failed')),
            -(r.get('images_per_s') or {}).get('median', 0))):
        speed = row.get('images_per_s')
        agreement = row.get('agreement')
        lines.append('| ' + ' | '.join([
            '**>**' if row.get('status') == 'chosen' else '',
            f'`{row["name"]}`', row['precision'],
            _fmt(row.get('metric')), _fmt(row.get('drop')),
            format_summary(speed) if speed else '-',
            _fmt(row.get('vs_baseline')) + ('x' if row.get(
                'vs_baseline') else ''),
            _fmt(row.get('gmacs_per_s'), '.1f'),
            _fmt(row.get('pct_of_ceiling'), '.0f'),
            '-' if agreement is None else f'{100 * agreement:.2f} %',
            row.get('reason', '')]) + ' |')
    return '\n'.join(lines)


def format_markdown(report: dict) -> str:
    """``report.md``."""
    host = report['host']
    flags = ', '.join(host['cpu_features']['flags']) or 'no AVX2'
    chosen = report['chosen']
    bound = ('no accuracy bound (speed only: the weights were not '
             'evaluated)' if report['max_drop'] is None else
             f'{report["metric_name"]} within {report["max_drop"]:g} points '
             f'of the fp32 model ({_fmt(report["reference_metric"])})')
    out = [f'# Deployment of {report["config"]}', '',
           f'- checkpoint: `{report["checkpoint"]}`',
           f'- CPU: {host["cpu"]} ({flags}), '
           f'{host["threads"]} threads; load average at start '
           f'{host.get("load_avg_start")}, at end {host.get("load_avg_end")}',
           f'- batch {report["batch_size"]}, input {report["input_shape"]}; '
           f'{report["rounds"]} alternating rounds, each serving timed for '
           f'at least {report["min_time"]:g} s per round; images/s: median '
           f'±half-range over the rounds',
           f'- bound: {bound}', '']
    if chosen:
        row = next(r for r in report['servings'] if r['name'] == chosen)
        out.append(f'**Chosen: `{chosen}`** ({row["precision"]}), '
                   f'{format_summary(row["images_per_s"])} images/s, '
                   f'{_fmt(row.get("vs_baseline"))}x the training form '
                   f'in torch fp32 eager, drop {_fmt(row.get("drop"))}; '
                   f'shipped as {", ".join(report["shipped"])}.')
    else:
        out.append(f'**No serving meets the bound.** Closest: '
                   f'`{report["closest"]}`. Nothing is recommended; see the '
                   f'drops below (a QARepVGG model, or more calibration '
                   f'images, may help).')
    out += ['', format_table(report), '']
    out += [f'- ceiling {precision}: {ceiling["macs_per_s"] / 1e9:.1f} GMAC/s '
            f'(OpenVINO, a stack of 3x3 convs at C, H, W = '
            f'{report["ceiling_shape"]})' + (f'; {ceiling["note"]}' if
                                             ceiling.get('note') else '')
            for precision, ceiling in report['ceilings'].items()]
    control = report.get('accuracy_control')
    if control:
        layers, plain = control['layers'], control.get('plain_layers')
        kept = layers['float'] - (plain['float'] if plain else 0)
        out.append(f'- NNCF accuracy control: {kept} layer(s) returned to '
                   f'float to meet the bound ({layers["float"]} of '
                   f'{sum(layers.values())} conv/matmul layers run in float'
                   + (f'; plain INT8: {plain["float"]}' if plain else '')
                   + ')')
    out += [f'- MACs per image: {report["macs_per_image"] / 1e9:.3f} G; '
            f'"same prediction": share of identical top-1 (or per-pixel) '
            f'predictions with the fp32 torch model', '',
            f'Command: `{report["command"]}`', '']
    return '\n'.join(out)


def format_model_card(report: dict) -> str:
    """``model_card.md``: input, output, how to run it, metric, speed."""
    meta = report['graph_metadata']
    prep = json.loads(meta.get('preprocessing', '{}'))
    row = next(r for r in report['servings']
               if r['name'] == report['chosen'])
    model = report['shipped'][0]
    name = osp.splitext(osp.basename(report['config']))[0]
    inside = ('the graph applies it itself: feed raw pixel values'
              if prep.get('mean') else 'none')
    lines = [
        f'# Model card: {name} ({meta.get("task", "")})', '',
        f'Made by `tools/deploy.py` from `{report["config"]}` and '
        f'`{report["checkpoint"]}`.', '',
        '## Input', '',
        f'- `images`: float32 (N, C, H, W), values 0-255, size '
        f'{meta.get("input_size")} (batch, height and width are dynamic)',
        f'- channel order: {meta.get("channel_order")} (as the config\'s '
        f'pipeline loads images; OpenCV / mmcv decode colour images as BGR)',
        f'- mean / std: {prep.get("mean")} / {prep.get("std")}; '
        f'{inside}' + ('; BGR->RGB flip inside the graph'
                       if prep.get('bgr_to_rgb') else ''), '',
        '## Output', '', f'- {meta.get("output")}']
    if meta.get('class_names'):
        names = json.loads(meta['class_names'])
        lines.append(f'- {len(names)} classes: {", ".join(names[:20])}'
                     + (' ...' if len(names) > 20 else ''))
    lines += ['', '## Run it', '']
    if model.endswith('.xml'):
        hint = '{"INFERENCE_PRECISION_HINT": "%s"}' % (
            'bf16' if row['precision'] == 'bf16' else 'f32')
        lines += ['```python', 'import numpy as np, openvino as ov',
                  f'compiled = ov.Core().compile_model("{model}", "CPU", '
                  f'{hint})',
                  'scores = compiled(images.astype(np.float32))[0]', '```']
    else:
        lines += ['```python', 'import numpy as np, onnxruntime as ort',
                  f'session = ort.InferenceSession("{model}", '
                  f'providers=["CPUExecutionProvider"])',
                  'scores = session.run(None, {"images": '
                  'images.astype(np.float32)})[0]', '```']
        if row['runtime'] == 'torch':
            lines.append(f'\n(The fastest serving was `{row["name"]}`, '
                         f'PyTorch; the file is its fp32 graph.)')
    speed = row['images_per_s']
    lines += ['', '## Accuracy and speed', '',
              f'- {report["metric_name"]}: {_fmt(row.get("metric"))} '
              f'(fp32: {_fmt(report["reference_metric"])}, drop '
              f'{_fmt(row.get("drop"))}) on {report["eval_split"]}',
              f'- `{row["name"]}` ({row["precision"]}): '
              f'{format_summary(speed)} images/s at batch '
              f'{report["batch_size"]} on {report["host"]["cpu"]}, '
              f'{report["host"]["threads"]} threads; '
              f'{_fmt(row.get("vs_baseline"))}x the training form in '
              f'torch fp32 eager', '']
    return '\n'.join(lines)


def plot(report: dict, path: str) -> None:
    """Speed (x, log) against the metric (y) of every evaluated serving,
    the chosen one marked; the bound as a dashed line."""
    import matplotlib  # lazy: only the deploy job draws
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    timed = [r for r in report['servings'] if r.get('images_per_s')]
    for index, row in enumerate(sorted(
            timed, key=lambda r: r['images_per_s']['median'])):
        speed = row['images_per_s']
        y = row.get('metric')
        y = 0.0 if y is None else y
        chosen = row['name'] == report['chosen']
        ax.errorbar(speed['median'], y, xerr=[[speed['median'] - speed[
            'min']], [speed['max'] - speed['median']]], fmt='*' if chosen
            else 'o', markersize=14 if chosen else 6, capsize=3)
        ax.annotate(row['name'], (speed['median'], y), fontsize=8,
                    xytext=(4, 4 - 11 * (index % 3)),
                    textcoords='offset points')
    if report['max_drop'] is not None and report['reference_metric']:
        ax.axhline(report['reference_metric'] - report['max_drop'],
                   linestyle='--', color='grey', linewidth=1)
    ax.set_xscale('log')
    ax.set_xlabel(f'images/s (batch {report["batch_size"]}, '
                  f'{report["host"]["threads"]} threads; bars: round range)')
    ax.set_ylabel(report['metric_name'] or 'metric (not evaluated)')
    ax.set_title(f'{report["host"]["cpu"]}: speed vs accuracy')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_documents(report: dict, folder: str) -> None:
    """``report.md``, the plot and (when a serving met the bound)
    ``model_card.md`` in ``folder``: ``deploy_model(documents=...)``."""
    texts = {'report.md': format_markdown(report)}
    if report['chosen']:
        texts['model_card.md'] = format_model_card(report)
    for name, text in texts.items():
        with open(osp.join(folder, name), 'w') as f:
            f.write(text)
    plot(report, osp.join(folder, 'speed_vs_accuracy.png'))
