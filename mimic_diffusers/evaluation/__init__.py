"""The evaluation: attacks x threat models x batches, resumable, data parallel, with reports.

config.py   `EvalConfig` and its validation; threat keys, attack labels and params
store.py    the JSONL store: read (a torn last line skipped), merge, append, pending units
runner.py   the Accelerate loop, one unit's attacks and their vote scores, example grids
summary.py  the one metric definition, per attack and worst case (also per sample), `report_store`
results.py  the typed results (`Results`, `ThreatResult`, `AttackResult`, `Accuracy`) and `read_results`,
            the one place a store is read into them
checks.py   the gradient-masking warnings, by attack type
statistics.py, compare.py  paired comparisons of two settings on the same images
"""

from .checks import masking_warnings
from .config import EvalConfig, attack_label, attack_params, threat_key
from .results import Accuracy, AttackResult, Results, ThreatResult, per_sample, read_results
from .runner import Terminated, evaluate_unit, run_evaluation, save_example_grid, score_votes, unit_seed
from .store import SCORES, append_record, merge_records, pending_units, read_records, survivors
from .summary import RULES, report_store, robust_under_rule, summarize, worst_case_samples

__all__ = [
    "RULES",
    "SCORES",
    "Accuracy",
    "AttackResult",
    "EvalConfig",
    "Results",
    "Terminated",
    "ThreatResult",
    "append_record",
    "attack_label",
    "attack_params",
    "evaluate_unit",
    "masking_warnings",
    "merge_records",
    "pending_units",
    "per_sample",
    "read_records",
    "read_results",
    "report_store",
    "survivors",
    "robust_under_rule",
    "run_evaluation",
    "save_example_grid",
    "score_votes",
    "summarize",
    "threat_key",
    "unit_seed",
    "worst_case_samples",
]
