"""Hugging Face Hub upload and download of MimicDiffusion pipeline folders.

`MimicHubMixin` makes `push_to_hub` / `save_pretrained(push_to_hub=True)` upload the whole folder with
its own model card (`modelcard.py`; diffusers' own versions would replace it with a generic one), and
`looks_like_repo_id` tells a Hub repo id from a local path. The results schema and the card are
re-exported here for the callers that import them from `mimic_diffusers.hub`.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Optional, Union

from diffusers.utils import hub_utils, logging

from .modelcard import CARD_TAGS, DATASETS, LIBRARY_NAME, model_card, write_model_card  # noqa: F401  (re-exported)
from .results_schema import (  # noqa: F401  (re-exported)
    MIMIC_OPTIONS,
    RESULT_KEYS,
    RESULTS_FILE,
    load_results,
    matching_preset,
    read_json,
)

logger = logging.get_logger(__name__)


def looks_like_repo_id(path) -> bool:
    """Whether `path` names a Hub repo (`name` or `namespace/name`) rather than a local path: not an
    existing file or folder, not absolute or `.`-relative, and a valid repo id for the Hub."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = os.fspath(path)
    if not isinstance(path, str) or os.path.exists(path) or os.path.isabs(path) or path.startswith("."):
        return False
    try:
        validate_repo_id(path)
    except HFValidationError:
        return False
    return True


class MimicHubMixin:
    """`save_pretrained` always writes a model card; `push_to_hub` uploads the whole folder with it."""

    def save_pretrained(
        self,
        save_directory: Union[str, os.PathLike],
        *args,
        push_to_hub: bool = False,
        overwrite_model_card: bool = False,
        **kwargs,
    ):
        hub_kwargs = {k: kwargs.pop(k) for k in ("commit_message", "private", "create_pr", "token") if k in kwargs}
        repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(str(save_directory))))
        super().save_pretrained(save_directory, *args, **kwargs)
        write_model_card(str(save_directory), repo_id=repo_id if push_to_hub else None, overwrite=overwrite_model_card)
        if push_to_hub:
            repo_id = hub_utils.create_repo(
                repo_id, exist_ok=True, private=hub_kwargs.get("private"), token=hub_kwargs.get("token")
            ).repo_id
            return self._upload_folder(
                str(save_directory),
                repo_id,
                token=hub_kwargs.get("token"),
                commit_message=hub_kwargs.get("commit_message"),
                create_pr=hub_kwargs.get("create_pr", False),
            )

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: Optional[str] = None,
        private: Optional[bool] = None,
        token: Optional[str] = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: Optional[str] = None,
        results=None,
        dataset=None,
        training=None,
    ):
        """Upload model_index.json, unet/, scheduler/, classifier/, README.md (and results.json if any).

        README.md is generated from this pipeline. Without `results`, the `results.json` of the folder this pipeline was loaded from travels along,
        provided the guidance options are still the ones it was measured with.
        """
        repo_id = hub_utils.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmpdir:
            super().save_pretrained(tmpdir, safe_serialization=safe_serialization, variant=variant)
            results = results if results is not None else self._source_results()
            if results is not None:
                with open(os.path.join(tmpdir, RESULTS_FILE), "w") as f:
                    json.dump(load_results(results), f, indent=1)
            write_model_card(tmpdir, dataset=dataset, training=training, repo_id=repo_id, overwrite=True)
            return self._upload_folder(
                tmpdir, repo_id, token=token, commit_message=commit_message, create_pr=create_pr
            )

    def _source_results(self):
        source = self.name_or_path
        if not (source and os.path.isfile(os.path.join(source, RESULTS_FILE))):
            return None
        saved = read_json(source, "scheduler", "scheduler_config.json") or {}
        if any(saved.get(k) != self.scheduler.config.get(k) for k in MIMIC_OPTIONS):
            logger.warning(f"not carrying {source}/{RESULTS_FILE}: the guidance options changed since it was measured")
            return None
        return load_results(folder=source)
