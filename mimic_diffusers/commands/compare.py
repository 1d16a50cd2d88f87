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

    if len(args.config) != 2:
        raise ValueError(f"--config: give exactly two configs (A and B), got {len(args.config)}")
    a, b = (EvalConfig.from_file(path) for path in args.config)
    shared = sorted({t["eps"] for t in a.threats} & {t["eps"] for t in b.threats})
    eps_values = args.eps or shared
    missing = [e for e in eps_values if e not in shared]
    if missing or not eps_values:
        raise ValueError(f"--eps: {missing or 'none'} not in both configs; both have {shared}")
    print(f"A: {args.config[0]}\nB: {args.config[1]}\nrule: {args.rule}\n")
    print(
        "| eps | N | A robust | B robust | A - B, points [95% CI] | A only / B only | exact McNemar p | answer | detectable |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for eps in eps_values:
        c = compare_stores(a, b, eps, args.rule)
        low, high = (100 * x for x in c.ci95)
        print(
            f"| {eps:g} | {c.n} | {c.a_robust} | {c.b_robust} | {100 * c.difference:+.1f} [{low:+.1f}, {high:+.1f}] | "
            f"{c.a_only} / {c.b_only} | {c.p_value:.2g} | {c.verdict} | {100 * c.detectable:.0f} |"
        )
