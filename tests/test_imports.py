"""The package imports its parts on first use: `import mimic_diffusers` and a command's bad-input error do not wait
for diffusers, and a pipeline folder loads in a fresh interpreter that imported only the pipeline class."""

import ast
import json
import os
import subprocess
import sys

import pytest

import mimic_diffusers
from mimic_diffusers.defaults import shipped_pipeline_path


def run_fresh(code: str) -> str:
    """stdout of `code` in a new interpreter (nothing imported by other tests)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_and_a_bad_config_error_load_neither_torch_nor_diffusers_until_needed():
    out = run_fresh(
        "import sys\n"
        "import mimic_diffusers\n"
        "print('torch' in sys.modules)\n"
        "from mimic_diffusers.cli import main\n"
        "print(main(['evaluate', '--config', 'no-such-config.yaml']), 'diffusers' in sys.modules, 'timm' in sys.modules)\n"
    )
    assert out.split() == ["False", "2", "False", "False"]


@pytest.mark.slow
def test_a_folder_loads_in_a_fresh_interpreter_that_imported_only_the_pipeline_class():
    out = run_fresh(
        "import sys\n"
        "from mimic_diffusers import DiffPurePipeline\n"
        "print('mimic_diffusers.classifier' in sys.modules)\n"
        f"pipe = DiffPurePipeline.from_pretrained({shipped_pipeline_path()!r})\n"
        "print(type(pipe.classifier).__name__, type(pipe.scheduler).__name__)\n"
    )
    assert out.split()[0] == "False" and out.split()[-2:] == ["TimmClassifier", "MimicDiffusionScheduler"]


def test_from_pretrained_imports_only_this_package_s_component_modules_a_folder_names(tmp_path, monkeypatch):
    """What the slow fresh-interpreter test checks end to end, in-process: from_pretrained imports the modules
    of `COMPONENT_MODULES` that model_index.json names, and no module named from elsewhere."""
    from mimic_diffusers import MimicDiffusionPipeline, safety

    index = {
        "_class_name": "MimicDiffusionPipeline",
        "classifier": ["mimic_diffusers.classifier_transformers", "TransformersClassifier"],
        "scheduler": ["mimic_diffusers.scheduling_mimic", "MimicDiffusionScheduler"],
        "unet": ["someone_else.models", "UNet"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    imported = []

    class Stop(Exception):
        pass

    def record(name):
        imported.append(name)
        if len(imported) == 2:
            raise Stop  # both named: stop before diffusers reads the (empty) folder

    monkeypatch.setattr(safety.importlib, "import_module", record)
    with pytest.raises(Stop):
        MimicDiffusionPipeline.from_pretrained(str(tmp_path))
    assert imported == ["mimic_diffusers.classifier_transformers", "mimic_diffusers.scheduling_mimic"]


def test_every_public_name_resolves_and_the_static_imports_name_the_same_modules():
    for name in mimic_diffusers.__all__:
        value = getattr(mimic_diffusers, name)
        assert getattr(sys.modules[f"mimic_diffusers.{mimic_diffusers._EXPORTS[name]}"], name) is value
    assert set(mimic_diffusers.__all__) <= set(dir(mimic_diffusers))
    with pytest.raises(AttributeError, match="has no attribute 'MimicPipeline'"):
        mimic_diffusers.MimicPipeline  # noqa: B018
    # the TYPE_CHECKING imports (what type checkers and the API docs read) list the same names and modules
    with open(mimic_diffusers.__file__) as f:
        tree = ast.parse(f.read())
    block = next(
        node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
    )
    static = {alias.name: node.module for node in block.body for alias in node.names}
    assert static == mimic_diffusers._EXPORTS


def test_a_folder_whose_model_index_is_not_json_is_refused_by_name(tmp_path):
    from mimic_diffusers import MimicDiffusionPipeline

    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="model_index.json is not valid JSON"):
        MimicDiffusionPipeline.from_pretrained(str(tmp_path))
    assert os.listdir(tmp_path) == ["model_index.json"]
