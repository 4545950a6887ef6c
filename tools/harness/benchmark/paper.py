"""The paper's published figures (``paper_results.json``) and the mapping
from benchmark model names (config stems, ``timm:`` names) to them."""
import json
import os.path as osp
import re
from typing import Dict, Optional, Tuple

PAPER_RESULTS = osp.join(osp.dirname(__file__), 'paper_results.json')

#: task -> (accuracy field in the table, axis label)
METRICS = {'classification': ('top1', 'ImageNet top-1 (%)'),
           'segmentation': ('miou', 'Cityscapes mIoU (%)')}


def load_paper_results(path: str = PAPER_RESULTS) -> dict:
    with open(path) as f:
        return json.load(f)


def _arch_name(arch: str) -> str:
    """``b1g2`` -> ``B1g2``, ``d2se`` -> ``D2se``."""
    return arch[0].upper() + arch[1:]


def paper_key(model_name: str) -> Optional[str]:
    """The paper's name for a benchmarked model, or ``None``.

    ``repvgg-a0_8xb32_in1k`` and ``timm:repvgg_a0`` -> ``RepVGG-A0``,
    ``resnet18_8xb32_in1k`` -> ``ResNet-18``,
    ``pspnet_repvgg-b1g2-fast-d8_...`` -> ``PSPNet RepVGG-B1g2-fast``,
    ``pspnet_r50-d8_...`` -> ``PSPNet ResNet-50``.
    """
    name = model_name.lower().split(':')[-1]
    seg = re.match(r'pspnet_(?:repvgg-([a-z0-9]+?)(-fast)?|r(\d+))-d8', name)
    if seg:
        if seg.group(3):
            return f'PSPNet ResNet-{seg.group(3)}'
        return f'PSPNet RepVGG-{_arch_name(seg.group(1))}{seg.group(2) or ""}'
    cls = re.match(r'repvgg[-_]([a-z0-9]+?)(?:_|$)', name)
    if cls:
        return f'RepVGG-{_arch_name(cls.group(1))}'
    resnet = re.match(r'resnet(\d+)(?:_|$)', name)
    if resnet:
        return f'ResNet-{resnet.group(1)}'
    return None


def accuracy_table(task: str, user_file: Optional[str] = None
                   ) -> Dict[str, float]:
    """``{model: accuracy}``: the paper's, overridden by ``user_file``.

    ``user_file`` is JSON: ``{"RepVGG-A0": 72.9, ...}`` or
    ``{"RepVGG-A0": {"top1": 72.9}, ...}``; keys may be paper names or
    benchmark model names.
    """
    field = METRICS[task][0]
    table = {key: row[field] for key, row in
             load_paper_results()[task].items()
             if row.get(field) is not None}
    if user_file:
        with open(user_file) as f:
            user = json.load(f)
        if not isinstance(user, dict):
            raise ValueError(f'{user_file}: expected a JSON object '
                             f'{{"model": accuracy}}')
        for key, value in user.items():
            if isinstance(value, dict):
                value = value.get(field)
            if not isinstance(value, (int, float)):
                raise ValueError(
                    f'{user_file}: "{key}" must map to a number or to '
                    f'{{"{field}": number}}, got {value!r}')
            table[key] = float(value)
    return table


def paper_arch_figures() -> Dict[str, Tuple[float, float]]:
    """``{arch: (deploy params in M, MACs in G)}`` of the paper's Tables 4-5
    (1000 classes, 224x224; the paper rounds MACs to 0.1 G)."""
    table = load_paper_results()['classification']
    return {key[len('RepVGG-'):].lower(): (row['params_m'], row['gmacs'])
            for key, row in table.items()
            if key.startswith('RepVGG-') and row.get('params_m')}


def paper_speed(task: str) -> Dict[str, float]:
    """The paper's images/s (1080Ti) per model."""
    return {key: row['speed'] for key, row in
            load_paper_results()[task].items() if row.get('speed')}
