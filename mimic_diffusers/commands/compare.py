"""`compare --config A.yaml --config B.yaml`: two evaluated settings, paired on the same images, per eps."""

from ..evaluation.compare import RULE_NAMES


def add_arguments(p, name):
    p.add_argument(
        "--config",
        required=True,
        action="append",
        metavar="CONFIG",
        help="an evaluation config whose store holds results; give it twice: A, then B",
    )
    p.add_argument("--eps", type=float, nargs="+", help="compare at these eps only (default: every eps both have)")
    p.add_argument("--rule", choices=sorted(RULE_NAMES), default="vote", help="the decision rule (default: vote)")


def run(args):
    from ..evaluation import EvalConfig
    from ..evaluation.compare import compare_stores
    from ..evaluation.statistics import MARKDOWN_COLUMNS, markdown_cells

    if len(args.config) != 2:
        raise ValueError(f"--config: give exactly two configs (A and B), got {len(args.config)}")
    a, b = (EvalConfig.from_file(path) for path in args.config)
    shared = sorted({t["eps"] for t in a.threats} & {t["eps"] for t in b.threats})
    eps_values = args.eps or shared
    missing = [e for e in eps_values if e not in shared]
    if missing or not eps_values:
        raise ValueError(f"--eps: {missing or 'none'} not in both configs; both have {shared}")
    print(f"A: {args.config[0]}\nB: {args.config[1]}\nrule: {args.rule}\n")
    print(f"| eps | N | {MARKDOWN_COLUMNS} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for eps in eps_values:
        c = compare_stores(a, b, eps, args.rule)
        print(f"| {eps:g} | {c.n} | {markdown_cells(c.to_dict())} |")
