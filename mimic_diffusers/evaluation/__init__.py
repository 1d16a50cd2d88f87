"""The evaluation: attacks x threat models x batches, resumable, data parallel, with reports.

config.py   `EvalConfig` and its validation; threat keys, attack labels and params
store.py    the JSONL store: read (torn-line repair, legacy names), merge, append, pending units
runner.py   the Accelerate loop, one unit's attacks and their vote scores, example grids
summary.py  the one metric definition, per attack and worst case (also per sample), `report_store`
checks.py   the gradient-masking warnings, by attack type
"""

from .checks import masking_warnings
from .config import EvalConfig, attack_label, attack_params, threat_key
from .runner import evaluate_unit, run_evaluation, save_example_grid, score_votes, unit_seed
from .store import SCORES, append_record, merge_records, pending_units, read_records, survivors
from .summary import RULES, report_store, robust_under_rule, summarize, worst_case_samples

__all__ = [
    "RULES",
    "SCORES",
    "EvalConfig",
    "append_record",
    "attack_label",
    "attack_params",
    "evaluate_unit",
    "masking_warnings",
    "merge_records",
    "pending_units",
    "read_records",
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
