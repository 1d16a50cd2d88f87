"""Model card and Hub upload, without network.

The Hub client is replaced where diffusers calls it (`create_repo` / `upload_folder` /
`load_or_create_model_card` in `diffusers.utils.hub_utils` and `diffusers.pipelines.pipeline_utils`),
and huggingface_hub is put in offline mode, so any request that slips past the fakes raises. The fake
`upload_folder` checks its arguments against the real signature and copies the folder it is given:
that copy is exactly the set of files the real client would have sent.
"""

import inspect
import json
import os
import shutil
import types

import huggingface_hub
import pytest
import torch
from conftest import gen, tiny_pipeline
from diffusers import DDIMScheduler
from huggingface_hub import ModelCard

from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler
from mimic_diffusers.hub import MIMIC_OPTIONS, load_results, looks_like_repo_id, model_card, write_model_card
from mimic_diffusers.safety import PICKLE_SUFFIXES

PIPELINE_FILES = {
    "README.md",
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "classifier/config.json",
    "classifier/diffusion_pytorch_model.safetensors",
}
RESULTS = [
    {
        "metric": "robust_accuracy",
        "value": 0.6875,
        "attack": "BPDA+EOT Linf eps=0.3",
        "n": 64,
        "command": "mimic-diffusers evaluate --attack bpda --eps 0.3 | tee log",
    },
    {
        "metric": "clean_accuracy",
        "value": 0.9375,
        "attack": "none",
        "n": 64,
        "command": "mimic-diffusers evaluate",
        "histogram": {"0": 30, "1": 34},
    },
]


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(guidance_window_start=0.6, distance="l2")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Fake Hub: records create_repo calls and keeps a copy of every uploaded folder."""
    import diffusers.pipelines.pipeline_utils as pipeline_utils
    import diffusers.utils.hub_utils as hub_utils

    state = types.SimpleNamespace(repos=[], uploads=[])

    def create_repo(repo_id, **kwargs):
        inspect.signature(huggingface_hub.create_repo).bind(repo_id, **kwargs)
        state.repos.append(repo_id)
        return types.SimpleNamespace(repo_id=repo_id)

    def upload_folder(**kwargs):
        inspect.signature(huggingface_hub.upload_folder).bind(**kwargs)
        copy = tmp_path / f"upload{len(state.uploads)}"
        shutil.copytree(kwargs["folder_path"], copy)  # the caller deletes its temporary folder afterwards
        state.uploads.append({**kwargs, "copy": str(copy)})
        return f"https://huggingface.co/{kwargs['repo_id']}/commit/0"

    def no_network(*args, **kwargs):
        raise AssertionError("load_or_create_model_card reads the Hub: the card must be built locally")

    for module in (hub_utils, pipeline_utils):
        monkeypatch.setattr(module, "create_repo", create_repo)
        monkeypatch.setattr(module, "upload_folder", upload_folder, raising=False)
        monkeypatch.setattr(module, "load_or_create_model_card", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return state


def files(folder):
    return {
        os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/")
        for root, _, names in os.walk(folder)
        for f in names
    }


def option_rows(readme):
    """{option: value} from the card's guidance option table."""
    rows = [line.split("|") for line in readme.splitlines() if line.startswith("| `")]
    return {cells[1].strip(" `"): json.loads(cells[2].strip(" `")) for cells in rows}


def purify(pipe, x):
    return pipe(x, num_inference_steps=10, generator=gen(0), output_type="pt").images


def test_push_to_hub_uploads_whole_folder_with_card(pipe, hub):
    url = pipe.push_to_hub("user/tiny-mimic", commit_message="tiny")
    assert url.startswith("https://huggingface.co/user/tiny-mimic")
    assert hub.repos == ["user/tiny-mimic"]
    (upload,) = hub.uploads
    assert upload["repo_id"] == "user/tiny-mimic" and upload["commit_message"] == "tiny"
    assert upload["path_in_repo"] is None  # the whole repo, not a subfolder
    sent = files(upload["copy"])
    assert sent == PIPELINE_FILES
    assert not [f for f in sent if f.endswith(PICKLE_SUFFIXES)]

    card = ModelCard.load(os.path.join(upload["copy"], "README.md"))
    assert card.data.library_name == "mimic-diffusers"
    assert {"adversarial-purification", "diffusers", "mimicdiffusion"} <= set(card.data.tags)
    options = option_rows(card.content)
    assert set(options) == set(MIMIC_OPTIONS)
    assert options == {k: pipe.scheduler.config[k] for k in MIMIC_OPTIONS}
    assert options["guidance_window_start"] == 0.6 and options["distance"] == "l2"
    assert 'MimicDiffusionPipeline.from_pretrained("user/tiny-mimic")' in card.content
    assert "DiffusionPipeline.from_pretrained" in card.content and "import mimic_diffusers" in card.content
    assert "No measured results" in card.content


def test_uploaded_folder_loads_back_identically(pipe, hub):
    pipe.push_to_hub("user/tiny-mimic")
    loaded = MimicDiffusionPipeline.from_pretrained(hub.uploads[0]["copy"])
    loaded.set_progress_bar_config(disable=True)
    x = torch.rand(2, 1, 16, 16, generator=gen(1))
    torch.testing.assert_close(purify(loaded, x), purify(pipe, x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.classify(x), pipe.classify(x), rtol=0, atol=0)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(loaded.scheduler.config) == public(pipe.scheduler.config)


def test_from_pretrained_hub_id_goes_through_snapshot_download(pipe, hub, monkeypatch):
    pipe.push_to_hub("user/tiny-mimic")
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return hub.uploads[0]["copy"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = MimicDiffusionPipeline.from_pretrained("user/tiny-mimic")
    ((repo_id, kwargs),) = calls
    assert repo_id == "user/tiny-mimic"
    assert not any(p.endswith(s) for p in kwargs["allow_patterns"] for s in PICKLE_SUFFIXES)
    assert isinstance(loaded.scheduler, MimicDiffusionScheduler)


def test_save_pretrained_push_to_hub(pipe, hub, tmp_path):
    folder = tmp_path / "tiny-mimic"
    pipe.save_pretrained(folder, push_to_hub=True, repo_id="org/tiny-mimic", private=True)
    assert hub.repos == ["org/tiny-mimic"]
    (upload,) = hub.uploads
    assert upload["folder_path"] == str(folder)
    assert files(upload["copy"]) == PIPELINE_FILES
    assert 'from_pretrained("org/tiny-mimic")' in (folder / "README.md").read_text()


def test_results_printed_with_attack_and_command(pipe, hub):
    pipe.push_to_hub("user/tiny-mimic", results=RESULTS, dataset="mnist5k")
    copy = hub.uploads[0]["copy"]
    assert files(copy) == PIPELINE_FILES | {"results.json"}
    readme = open(os.path.join(copy, "README.md")).read()
    assert "No measured results" not in readme and "mlxtend" in readme
    rows = [line for line in readme.splitlines() if line.startswith("| robust") or line.startswith("| clean")]
    assert rows == [
        "| robust_accuracy | 0.6875 | BPDA+EOT Linf eps=0.3 | 64 | "
        "`mimic-diffusers evaluate --attack bpda --eps 0.3 \\| tee log` |  |",
        '| clean_accuracy | 0.9375 | none | 64 | `mimic-diffusers evaluate` | {"histogram": {"0": 30, "1": 34}} |',
    ]


def test_results_json_travels_only_with_unchanged_options(hub, tmp_path):
    folder = tmp_path / "pipe"
    tiny_pipeline().save_pretrained(folder)
    (folder / "results.json").write_text(json.dumps({"results": RESULTS, "dataset": "mnist5k"}))
    loaded = MimicDiffusionPipeline.from_pretrained(folder)
    loaded.push_to_hub("user/a")
    assert "0.6875" in open(os.path.join(hub.uploads[0]["copy"], "README.md")).read()
    loaded.scheduler.register_to_config(distance="l2")  # results were measured with l1
    loaded.push_to_hub("user/b")
    assert "No measured results" in open(os.path.join(hub.uploads[1]["copy"], "README.md")).read()
    assert "results.json" not in files(hub.uploads[1]["copy"])


def test_card_kept_unless_asked_and_bad_results_rejected(tmp_path):
    folder = tmp_path / "pipe"
    pipe = tiny_pipeline()
    pipe.save_pretrained(folder)
    (folder / "README.md").write_text("my own card")
    pipe.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "my own card"
    assert write_model_card(folder) is None
    assert write_model_card(folder, overwrite=True) == str(folder / "README.md")
    assert "library_name: mimic-diffusers" in (folder / "README.md").read_text()
    for training in (None, {}):  # build-pipeline without --training records {}
        section = str(model_card(folder, training=training)).split("## Training", 1)[1].split("\n## ", 1)[0]
        assert section.strip() == "Not recorded for this pipeline."
    with pytest.raises(ValueError, match="attack"):
        load_results([{"metric": "robust_accuracy", "value": 0.5, "n": 10, "command": "x"}])
    with pytest.raises(ValueError, match="number"):
        load_results([{**RESULTS[0], "value": "high"}])


def test_card_lists_every_mimic_option():
    ours = set(inspect.signature(MimicDiffusionScheduler.__init__).parameters)
    ddim = set(inspect.signature(DDIMScheduler.__init__).parameters)
    assert set(MIMIC_OPTIONS) == ours - ddim


def test_scheduler_docstring_describes_each_option_as_option_docs_does():
    # help() and the API page read the docstring, pages and the card read OPTION_DOCS: they must agree
    doc = " ".join(MimicDiffusionScheduler.__doc__.split())
    differ = [k for k, v in MIMIC_OPTIONS.items() if f"{k} (" not in doc or " ".join(v.split()) not in doc]
    assert not differ, f"the MimicDiffusionScheduler docstring does not say what OPTION_DOCS says for {differ}"


def test_looks_like_repo_id(tmp_path):
    assert looks_like_repo_id("user/tiny-mimic") and looks_like_repo_id("tiny-mimic")
    (tmp_path / "file").write_text("x")
    for path in (
        str(tmp_path),
        str(tmp_path / "file"),
        "./user/x",
        "../x",
        "/abs/x",
        "a/b/c",
        "a/",
        "",
        "x..y",
        "a b",
    ):
        assert not looks_like_repo_id(path), path
