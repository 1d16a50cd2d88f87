"""An unfinished budget check, attack by attack: after each attack of the cascade, the robust counts under the
deployed vote at the lower budgets (A) and the higher (B) on the most images both stores have finished through
that attack, paired. It prints and writes nothing: a reading for whoever runs the study, not a result (the
pages show a budget check once both stores hold all its images).

    python -m studies.progress                                    # every budget check of the frontier report
    python -m studies.progress --check configs/mnist-confirm-eps0.3.yaml configs/mnist-confirm-eps0.3-4x.yaml
    python -m studies.progress --pair configs/mnist-confirm-eps0.3-4x.yaml   # its points against each other
    python -m studies.progress --remaining                        # the confirmation's compute still to run

`--pair` reads a config whose points the pages do not pair (a budget check's higher budgets): each
MimicDiffusion point against each DiffPure point, on the images all of them have finished through the whole
cascade.

`--remaining` sums, per point of each confirmation and its budget check, the attack units (an attack on a batch)
not yet run times the mean seconds its units have taken so far: a plan at the stored machines' speed, which the
stores' runs.jsonl names. Units whose attack has no stored time yet are counted apart, not guessed.
"""

import argparse
import os

from mimic_diffusers.evaluation import EvalConfig, attack_label, merge_records, read_records
from mimic_diffusers.evaluation.compare import RULE_NAMES
from mimic_diffusers.evaluation.config import threat_key
from mimic_diffusers.evaluation.statistics import MARKDOWN_COLUMNS, compare_paired, markdown_cells
from mimic_diffusers.evaluation.summary import worst_case_samples

from .frontier_report import BUDGET_CHECKS, CONFIRM, CONFIRM_4X, ROOT, config_at, confirmation, stored_points


def finished_images(config: EvalConfig, threat: dict, through: int) -> int:
    """How many of the config's first images (whole batches, in order) have a clean record and the results of
    its first `through` attacks at `threat`."""
    merged = merge_records(read_records(config.output_dir))
    labels = [attack_label(spec) for spec in config.attacks[:through]]
    for batch in range(config.num_batches):
        record = merged.get((batch, threat_key(threat)))
        if (batch, "clean") not in merged or record is None or not all(x in record["attacks"] for x in labels):
            return min(batch * config.batch_size, config.num_samples)
    return config.num_samples


def stage_rows(lower_path: str, higher_path: str) -> list:
    """One row per point, eps and attack of the cascade that both configs share: the paired counts on the
    images both have finished through that attack (rows with no such image are left out)."""
    low, high = (EvalConfig.from_file(os.path.join(ROOT, p)) for p in (lower_path, higher_path))
    n_max, rows = min(low.num_samples, high.num_samples), []
    if [attack_label(a) for a in low.attacks] != [attack_label(a) for a in high.attacks]:
        return rows  # other cascades: no attack-by-attack reading
    for point in (p for p in stored_points(high) if p in stored_points(low)):
        configs = [config_at(base, n_max, point) for base in (low, high)]
        for threat in (t for t in high.threats if t in low.threats):
            for k, spec in enumerate(high.attacks, 1):
                n = min(finished_images(c, threat, k) for c in configs)
                if n == 0:
                    break
                at_n = [config_at(base, n, point) for base in (low, high)]
                a, b = (worst_case_samples(c, threat, RULE_NAMES["vote"], through=k) for c in at_n)
                rows.append(
                    dict(point=point, eps=threat["eps"], attack=attack_label(spec), **compare_paired(a, b).to_dict())
                )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.progress", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", nargs=2, metavar=("LOWER", "HIGHER"), help="one budget check: the two configs (default: all)"
    )
    parser.add_argument("--pair", metavar="CONFIG", help="a config's points against each other, paired")
    parser.add_argument(
        "--remaining", action="store_true", help="the attack units the confirmations have left, and their seconds"
    )
    args = parser.parse_args(argv)
    if args.remaining:
        print_remaining(zip(CONFIRM, CONFIRM_4X))
        return 0
    if args.pair:
        if not os.path.isfile(os.path.join(ROOT, args.pair)):
            parser.error(f"--pair: no config at {args.pair}")
        print_pairs(args.pair)
        return 0
    for paths in [tuple(args.check)] if args.check else BUDGET_CHECKS:
        missing = [p for p in paths if not os.path.isfile(os.path.join(ROOT, p))]
        if missing:
            parser.error(f"--check: no config at {', '.join(missing)}")
        rows = stage_rows(*paths)
        if not rows:
            if args.check:
                print(f"{paths[0]} against {paths[1]}: no point has finished an attack on an image under both")
            continue
        print(f"\n{paths[0]} (A) against {paths[1]} (B), robust under the vote after each attack")
        print("| point | eps | after attack | images | A | B | A only / B only | exact McNemar p |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['point']} | {r['eps']:g} | {r['attack']} | {r['n']} | {r['a_robust']} | {r['b_robust']} "
                f"| {r['a_only']} / {r['b_only']} | {r['p_value']:.2g} |"
            )
    return 0


def print_pairs(config_path: str) -> None:
    """Each MimicDiffusion point of the config against each DiffPure point, under the vote, on the images all
    its points have finished."""
    c = confirmation(config_path, study={})
    if not c["pairs"]:
        print(f"{config_path}: no MimicDiffusion and DiffPure point have both finished an image")
        return
    print(f"\n{config_path}, eps {c['eps']:g}: {c['n']} of {c['planned']} images paired, robust under the vote")
    print(f"| A | B | {MARKDOWN_COLUMNS} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pair in c["pairs"]:
        print(f"| {pair['a']} | {pair['b']} | {markdown_cells(pair['vote'])} |")


def remaining_rows(config_path: str, points) -> list:
    """Per point, eps and attack of a config: its units (batches) run and planned, the mean stored seconds of those
    run (None where none has a time), and that mean times the units left."""
    base = EvalConfig.from_file(os.path.join(ROOT, config_path))
    rows = []
    for point in points:
        config = config_at(base, base.num_samples, point)
        merged = merge_records(read_records(config.output_dir))
        for threat in base.threats:
            for spec in base.attacks:
                label = attack_label(spec)
                run = [
                    merged[(b, threat_key(threat))]["attacks"][label]
                    for b in range(base.num_batches)
                    if label in merged.get((b, threat_key(threat)), {}).get("attacks", {})
                ]
                times = [r["seconds"] for r in run if "seconds" in r]
                mean = sum(times) / len(times) if times else None
                left = base.num_batches - len(run)
                rows.append(
                    dict(
                        point=point,
                        eps=threat["eps"],
                        attack=label,
                        run=len(run),
                        planned=base.num_batches,
                        mean_s=mean,
                        left_s=None if mean is None else mean * left,
                    )
                )
    return rows


def print_remaining(configs) -> None:
    """The units each confirmation (and its budget check, on the same points) has left, with their seconds."""
    total, unknown = 0.0, 0
    print("| config | point | eps | attack | units run / planned | mean s per unit | s left |")
    print("|---|---|---|---|---|---|---|")
    for confirm, check in configs:
        points = stored_points(EvalConfig.from_file(os.path.join(ROOT, confirm)))
        for path in (confirm, check):
            for r in remaining_rows(path, points):
                mean, left = (f"{x:,.0f}" if x is not None else "no time yet" for x in (r["mean_s"], r["left_s"]))
                print(
                    f"| `{path}` | {r['point']} | {r['eps']:g} | {r['attack']} | {r['run']} / {r['planned']} "
                    f"| {mean} | {left} |"
                )
                total += r["left_s"] or 0.0
                unknown += (r["planned"] - r["run"]) if r["left_s"] is None else 0
    print(f"\nabout {total:,.0f} s left at the stored unit times, plus {unknown} units with no stored time yet")


if __name__ == "__main__":
    raise SystemExit(main())
