"""RepVGG architectures (paper Tables 2-3) and their validation. An arch
holds, per post-stem stage (paper stages 2-5), ``num_blocks`` and
``width_factor`` (of 64, 128, 256, 512), plus ``groups`` (of the even
layers) and ``se_ratio`` (SE gates, D2se)."""
from typing import Any, Dict, Union

BASE_WIDTHS = (64, 128, 256, 512)
STEM_MAX_WIDTH = 64

_A, _B, _D = (2, 4, 14, 1), (4, 6, 16, 1), (8, 14, 24, 1)
#: name -> (blocks per stage 2-5, a, b, group variants, se_ratio); "b1",
#: "b1g2", "b1g4" are b1 with groups 1, 2, 4
_TABLE = dict(a0=(_A, 0.75, 2.5, (1, ), None), a1=(_A, 1, 2.5, (1, ), None),
              a2=(_A, 1.5, 2.75, (1, ), None), b0=(_B, 1, 2.5, (1, ), None),
              b1=(_B, 2, 4, (1, 2, 4), None), b2=(_B, 2.5, 5, (1, 2, 4), None),
              b3=(_B, 3, 5, (1, 2, 4), None), d2se=(_D, 2.5, 5, (1, ), 16))

ARCH_SETTINGS: Dict[str, Dict[str, Any]] = {
    name + (f'g{groups}' if groups > 1 else ''): dict(
        num_blocks=blocks, width_factor=(a, a, a, b), groups=groups,
        se_ratio=se)
    for name, (blocks, a, b, variants, se) in _TABLE.items()
    for groups in variants
}

ARCH_FIELDS = ('num_blocks', 'width_factor', 'groups', 'se_ratio')


def _field_error(field: str, problem: str) -> ValueError:
    return ValueError(f'arch["{field}"] {problem}')


def parse_arch(arch: Union[str, dict]) -> Dict[str, Any]:
    """Resolve an arch name (case-insensitive) or validate an arch dict."""
    if isinstance(arch, str):
        key = arch.lower()
        if key not in ARCH_SETTINGS:
            raise ValueError(
                f'unknown RepVGG arch "{arch}"; valid names are: '
                f'{", ".join(ARCH_SETTINGS)} (case-insensitive), or a dict '
                f'with the fields {", ".join(ARCH_FIELDS)}.')
        return dict(ARCH_SETTINGS[key])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name or a dict, got {type(arch)}')
    unknown = set(arch) - set(ARCH_FIELDS)
    if unknown:
        raise ValueError(f'unknown arch field(s) {sorted(unknown)}; the '
                         f'fields are {", ".join(ARCH_FIELDS)}')
    for field in ('num_blocks', 'width_factor'):
        if field not in arch:
            raise _field_error(field, 'is required')
        value = arch[field]
        if not isinstance(value, (list, tuple)) or len(value) != 4:
            raise _field_error(
                field, f'must have 4 entries (stages 2-5), got {value!r}')
        if any(v <= 0 for v in value):
            raise _field_error(field, f'must be positive, got {value!r}')
    if any(int(n) != n for n in arch['num_blocks']):
        raise _field_error('num_blocks', 'must be whole numbers')
    groups = arch.get('groups', 1)
    if not isinstance(groups, int) or groups < 1:
        raise _field_error('groups', f'must be a positive int, got {groups!r}')
    se_ratio = arch.get('se_ratio')
    if not (se_ratio is None or (isinstance(se_ratio, int) and se_ratio >= 1)):
        raise _field_error('se_ratio',
                           f'must be None or a positive int, got {se_ratio!r}')
    return dict(num_blocks=tuple(int(n) for n in arch['num_blocks']),
                width_factor=tuple(arch['width_factor']), groups=groups,
                se_ratio=se_ratio)


def stage_widths(arch: Dict[str, Any]):
    """(stem width, widths of the four post-stem stages)."""
    widths = tuple(int(base * f)
                   for base, f in zip(BASE_WIDTHS, arch['width_factor']))
    return min(STEM_MAX_WIDTH, widths[0]), widths


def layer_groups(arch: Dict[str, Any], layer_idx: int) -> int:
    """Groups of post-stem layer ``layer_idx`` (1-based): even layers only."""
    return arch['groups'] if layer_idx % 2 == 0 else 1
