"""Figure-1-style plot: accuracy against measured images/s, one labelled
point per model, RepVGG and the baselines as two series; optionally beside
the paper's own figure (its 1080Ti speeds) for comparison."""
import json
from typing import List, NamedTuple, Optional, Sequence

from .paper import METRICS, paper_key, paper_speed


class Point(NamedTuple):
    label: str
    accuracy: float
    speed: float
    family: str  #: 'RepVGG' or 'baseline'


def _row_speed(model: dict, form: str) -> Optional[float]:
    if form == 'best':
        best = model.get('best')
        return best and best['images_per_s']
    rows = [r for r in model['rows']
            if r['form'] == form and 'images_per_s' in r]
    return rows[0]['images_per_s']['median'] if rows else None


def _family(key: str) -> str:
    return 'RepVGG' if 'RepVGG' in key else 'baseline'


def load_points(json_paths: Sequence[str], accuracy: dict, task: str,
                form: str = 'deploy', warn=print) -> List[Point]:
    """Points from benchmark records; later files win for a repeated model."""
    points = {}
    for path in json_paths:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict) or 'models' not in record:
            raise ValueError(f'{path} is not a tools/benchmark_fps.py JSON '
                             f'record (no "models")')
        for model in record['models']:
            if model.get('task', 'classification') != task:
                continue
            key = paper_key(model['name'])
            acc = accuracy.get(model['name'], accuracy.get(key))
            speed = _row_speed(model, form)
            if acc is None or not speed:
                warn(f'skipping {model["name"]}: '
                     + ('no accuracy (add it with --accuracy)' if acc is None
                        else f'no timed "{form}" form'))
                continue
            label = key if key and not model['name'].startswith('timm:') \
                else model['name']
            points[label] = Point(label, acc, speed, _family(key or ''))
    return list(points.values())


def _draw(ax, points: Sequence[Point], title: str, ylabel: str,
          xlabel: str) -> None:
    styles = {'RepVGG': dict(marker='o', color='tab:red'),
              'baseline': dict(marker='s', color='tab:blue')}
    for family, style in styles.items():
        series = sorted((p for p in points if p.family == family),
                        key=lambda p: p.speed)
        if not series:
            continue
        ax.plot([p.speed for p in series], [p.accuracy for p in series],
                linestyle='-', linewidth=1, markersize=6,
                label=family if family == 'RepVGG' else 'ResNet / other',
                **style)
        for p in series:
            ax.annotate(p.label.replace('PSPNet ', ''), (p.speed, p.accuracy),
                        textcoords='offset points', xytext=(4, 4),
                        fontsize=7)
    ax.margins(x=0.15, y=0.1)  # room for the labels
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc='lower left')


def plot_speed_accuracy(points: Sequence[Point], out_path: str, task: str,
                        title: str, paper_panel: bool = True,
                        accuracy: Optional[dict] = None) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    ylabel = METRICS[task][1]
    paper_points = []
    if paper_panel:
        speeds = paper_speed(task)
        for p in points:
            key = p.label if p.label in speeds else paper_key(p.label)
            if key in speeds and accuracy and key in accuracy:
                paper_points.append(Point(key, accuracy[key], speeds[key],
                                          p.family))
    panels = 2 if paper_points else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8),
                             squeeze=False)
    _draw(axes[0][0], points, title, ylabel, 'images/s (measured here)')
    if paper_points:
        protocol = 'batch 128, 224x224' if task == 'classification' \
            else 'batch 16, 713x713'
        _draw(axes[0][1], paper_points,
              f'the paper (GTX 1080Ti, {protocol}, fp32)', ylabel,
              'images/s (paper)')
    fig.tight_layout()
    fig.savefig(out_path, dpi=130)
    plt.close(fig)


def _default_title(record_path: str, form: str) -> str:
    with open(record_path) as f:
        record = json.load(f)
    host = record.get('host', {})
    device = host.get('gpu') or host.get('cpu') or host.get('device', '?')
    threads = host.get('torch_threads')
    first = record['models'][0]
    load = host.get('load_avg_start')
    return (f'{device}' + (f', {threads} threads' if threads else '') +
            f'; batch {first["batch_size"]}, '
            f'{first["shape"][0]}x{first["shape"][1]}, {form} form' +
            (f'\n(load average {load[0]:.1f} at the start)' if load else ''))


def plot_records(records: Sequence[str], out: str,
                 accuracy_file: Optional[str] = None,
                 task: str = 'classification', form: str = 'deploy',
                 title: Optional[str] = None, paper_panel: bool = True,
                 warn=print) -> List[Point]:
    """Plot benchmark records (``tools/benchmark_fps.py --json``) against
    accuracies (the paper's, overridden by ``accuracy_file``) as the PNG
    ``out``; returns the plotted points."""
    import os

    from repvgg_mm.errors import ConfigError

    from .paper import accuracy_table
    for path in list(records) + ([accuracy_file] if accuracy_file else []):
        if not os.path.isfile(path):
            raise ConfigError(f'"{path}" does not exist.')
    if not out.lower().endswith('.png'):
        raise ConfigError(f'--out {out}: the plot is written as PNG; give a '
                          f'path ending in .png.')
    try:
        accuracy = accuracy_table(task, accuracy_file)
        points = load_points(records, accuracy, task, form, warn=warn)
        title = title or _default_title(records[0], form)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f'cannot read the inputs: {exc}') from None
    except UnicodeDecodeError:
        raise ConfigError('an input is not a JSON text file.') from None
    if not points:
        raise ConfigError(
            f'no model in {list(records)} has both a "{form}" timing and an '
            f'accuracy for task {task}; add accuracies with --accuracy or '
            f'check --task/--form.')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    plot_speed_accuracy(points, out, task, title, paper_panel=paper_panel,
                        accuracy=accuracy)
    return points
