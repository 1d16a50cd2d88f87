"""`evaluate --config configs/x.yaml`: run or resume an evaluation; prints the Markdown table."""
import os


def add_arguments(p, name):
    p.add_argument("--config", required=True, help="YAML or JSON file with EvalConfig fields (see configs/)")
    p.add_argument("--output-dir", help="overrides the config's output_dir")
    p.add_argument("--num-samples", type=int, help="overrides the config's num_samples")
    p.add_argument("--batch-size", type=int, help="overrides the config's batch_size (a new store only: a store "
                   "written with another batch_size is refused)")
    p.add_argument("--pipeline", help="overrides the config's pipeline folder or Hub id")
    p.add_argument("--eps", type=float, nargs="+", help="run only the config's threats with these eps values")


def run(args):
    from ..evaluation import EvalConfig, run_evaluation
    from ..reports import markdown_table

    config = EvalConfig.from_file(args.config, output_dir=args.output_dir, num_samples=args.num_samples,
                                  batch_size=args.batch_size, pipeline=args.pipeline)
    if args.eps:
        config.select_eps(args.eps)
    if not os.path.isdir(config.pipeline) and os.path.exists(config.pipeline):
        raise ValueError(f"pipeline {config.pipeline!r} is not a folder")
    summary = run_evaluation(config)
    print(markdown_table(summary))
    print(f"reports in {config.report_dir or config.output_dir}: results.md, summary.json, accuracy_vs_eps.png; "
          f"results store: {config.output_dir}/results.rank*.jsonl")
