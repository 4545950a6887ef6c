"""Write (or check) the README's headline figures table.

    python tools/headline_figures.py           # rewrite the README's block
    python tools/headline_figures.py --check    # exit 1 if README.md is stale

The table is generated from the records named in
harness.benchmark.headline.HEADLINE_RECORDS (docs/benchmarks/): a few rows,
each from one run on one named CPU.
"""
import os.path as osp

from harness.benchmark.headline import (HEADLINE_RECORDS, headline_table,
                                        replace_block)
from harness.cli import ToolError, ToolParser, run_tool
from repvgg_mm.io.atomic import atomic_output
from repvgg_mm.io.output_guard import guard_output

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = ToolParser(description=__doc__.split('\n')[0])
    parser.add_argument('--readme', default=osp.join(ROOT, 'README.md'))
    parser.add_argument('--records', default=osp.join(ROOT, 'docs',
                                                      'benchmarks'))
    parser.add_argument('--check', action='store_true',
                        help='only check that the README is up to date')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    guard_output(args.readme, '--readme')
    paths = [osp.join(args.records, name) for name in HEADLINE_RECORDS]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise ToolError(f'headline records missing: {", ".join(missing)}; '
                        f'run the commands of docs/benchmarks.md.')
    table = headline_table(paths)
    with open(args.readme) as f:
        text = f.read()
    try:
        updated = replace_block(text, table)
    except ValueError as exc:
        raise ToolError(f'{args.readme}: {exc}') from None
    if args.check:
        if updated != text:
            print(f'{args.readme} is out of date: run python '
                  f'tools/headline_figures.py')
            return 1
        print(f'{args.readme}: headline figures up to date')
        return 0
    with atomic_output(args.readme) as tmp:
        with open(tmp, 'w') as f:
            f.write(updated)
    print(f'wrote the headline figures of {args.records} into {args.readme}')


if __name__ == '__main__':
    run_tool(main)
