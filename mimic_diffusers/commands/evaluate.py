"""`evaluate --config configs/x.yaml`: run or resume an evaluation; prints the Markdown table."""

import os


def add_arguments(p, name):
    p.add_argument("--config", required=True, help="YAML or JSON file with EvalConfig fields (see configs/)")
    p.add_argument("--output-dir", help="overrides the config's output_dir")
    p.add_argument("--num-samples", type=int, help="overrides the config's num_samples")
    p.add_argument(
        "--batch-size",
        type=int,
        help="overrides the config's batch_size (a new store only: a store "
        "written with another batch_size is refused)",
    )
    p.add_argument("--pipeline", help="overrides the config's pipeline folder or Hub id")
    p.add_argument(
        "--eps",
        type=float,
        nargs="+",
        help="run only the config's threats with these eps values (the reports still cover every eps the store holds)",
    )
    p.add_argument(
        "--attacks",
        nargs="+",
        metavar="LABEL",
        help="run only the config's attacks with these labels "
        "(in a cascade, its first ones: a screen; the reports flag the attacks still missing)",
    )
    p.add_argument(
        "--batches-per-pass",
        type=int,
        default=1,
        metavar="N",
        help="run N of the store's batches together in one forward pass: a speed choice on a GPU that a batch "
        "of batch_size leaves idle (results and the store's records stay per sample and per batch)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: re-summarize the store as it stands and rewrite the reports",
    )


def run(args):
    from ..evaluation import EvalConfig, report_store, run_evaluation
    from ..reports import markdown_table

    config = EvalConfig.from_file(
        args.config,
        output_dir=args.output_dir,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        pipeline=args.pipeline,
    )
    if args.report_only:
        if args.eps or args.attacks:
            raise ValueError(
                f"--report-only runs nothing, so --{'eps' if args.eps else 'attacks'} has no effect; "
                "leave one of them out"
            )
        summary = report_store(config)
    else:
        if not os.path.isdir(config.pipeline) and os.path.exists(config.pipeline):
            raise ValueError(f"pipeline {config.pipeline!r} is not a folder")
        summary = run_evaluation(
            config, run_eps=args.eps, run_attacks=args.attacks, batches_per_pass=args.batches_per_pass
        )
    print(markdown_table(summary))
    print(
        f"reports in {config.report_dir or config.output_dir}: results.md, summary.json, accuracy_vs_eps.png; "
        f"results store: {config.output_dir}/results.rank*.jsonl"
    )
