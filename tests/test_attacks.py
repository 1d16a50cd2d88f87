"""Attacks: each one breaks an undefended model where random noise of the same size does not, stays in its
eps ball, is reproducible from its seed alone, and, created by name, breaks a defended pipeline."""

import pytest
import torch
from conftest import gen, tiny_pipeline

from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler
from mimic_diffusers.attacks import ATTACKS, PurifyThenClassify, create_attack, list_attacks, weak_against_randomized
from mimic_diffusers.attacks.autoattack import AutoAttackAdapter
from mimic_diffusers.attacks.cw import CWL2
from mimic_diffusers.attacks.pgd_eot import PGDEOT
from mimic_diffusers.attacks.square import Square
from mimic_diffusers.data import load_image_dataset, to_tensors
from mimic_diffusers.defaults import shipped_pipeline_path

SHIPPED = shipped_pipeline_path()


class Undefended(torch.nn.Module):
    """A fixed random linear classifier; labels are its own clean predictions (clean accuracy 100%)."""

    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))

    def forward(self, x):
        return self.classifier(x - 0.5)


@pytest.fixture(scope="module")
def undefended():
    torch.manual_seed(0)
    model = Undefended().eval()
    x = torch.rand(32, 1, 16, 16)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def random_perturbation(x, eps, norm, seed=1):
    """Noise of the attack's full size: a random corner of the l_inf ball, or a random l_2 direction."""
    g = gen(seed)
    if norm == "Linf":
        return (x + eps * torch.sign(torch.rand(x.shape, generator=g) - 0.5)).clamp(0, 1)
    d = torch.randn(x.shape, generator=g)
    return (x + eps * d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)


LINF, L2 = 0.07, 1.0  # budgets where random noise keeps >= 80% of the linear model
DIRECT = {  # attack -> (make, norm, eps)
    "pgd-linf": (lambda m: PGDEOT(m, eps=LINF, norm="Linf", steps=10, eot=2), "Linf", LINF),
    "pgd-l2": (lambda m: PGDEOT(m, eps=L2, norm="L2", steps=10), "L2", L2),
    "pgd-margin": (lambda m: PGDEOT(m, eps=LINF, norm="Linf", steps=10, loss="margin"), "Linf", LINF),
    "square": (lambda m: Square(m, eps=LINF, n_queries=1000), "Linf", LINF),
    "square-l2": (lambda m: Square(m, eps=L2, norm="L2", n_queries=1000), "L2", L2),
    "cw": (lambda m: CWL2(m, eps=L2, c=10.0, steps=50, lr=0.05), "L2", L2),
    "autoattack-standard": (
        lambda m: AutoAttackAdapter(m, eps=LINF, version="standard", n_iter=10, n_queries=50, n_target_classes=2),
        "Linf",
        LINF,
    ),
    "autoattack-rand": (lambda m: AutoAttackAdapter(m, eps=LINF, version="rand", n_iter=10, eot=2), "Linf", LINF),
}


@pytest.mark.parametrize("attack", list(DIRECT))
def test_attack_breaks_undefended_model_where_noise_does_not_and_stays_in_the_ball(undefended, attack):
    model, x, y = undefended
    make, norm, eps = DIRECT[attack]
    assert accuracy(model, x, y) == 1.0
    assert accuracy(model, random_perturbation(x, eps, norm), y) >= 0.8
    x_adv = make(model)(x, y)
    assert accuracy(model, x_adv, y) <= 0.1
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    size = (x_adv - x).abs().flatten(1).max(1).values if norm == "Linf" else (x_adv - x).flatten(1).norm(dim=1)
    assert size.max() <= eps * (1 + 1e-5)


def test_every_registered_attack_is_reproducible_from_its_seed_alone():
    """Same seed, same x_adv, whatever ran in between (every other attack, and Square and AutoAttack, which
    reseed torch's global RNG inside themselves) and whatever the global RNG holds; no attack changes the
    global RNG either."""
    pipe = tiny_pipeline(step_size_rule="constant", guidance_scale=30.0)
    x, y = torch.rand(2, 1, 16, 16, generator=gen(0)), torch.tensor([1, 2])
    budgets = {
        "autoattack-standard": dict(n_iter=2, n_queries=5, n_target_classes=1),
        "autoattack-rand": dict(n_iter=2, eot=1),
        "square": dict(n_queries=5),
        "cw-l2": dict(steps=2),
    }

    def run(name, seed):
        norm = "L2" if name == "cw-l2" else "Linf"
        return create_attack(
            name,
            pipe,
            eps=0.3 if norm == "Linf" else 2.0,
            norm=norm,
            seed=seed,
            num_inference_steps=2,  # the second step (t = 499) is guided
            **budgets.get(name, dict(steps=2)),
        )(x, y)

    assert set(budgets) | {"pgd-classifier", "pgd-eot", "bpda-eot", "exact-pgd-eot", "feedback-cut-pgd-eot"} == set(
        ATTACKS
    )
    first = {}
    for name in list_attacks():
        torch.manual_seed(1)
        state = torch.get_rng_state()
        first[name] = run(name, seed=5)
        assert torch.equal(torch.get_rng_state(), state), f"{name} changed torch's global RNG"
    run("square", seed=11), run("autoattack-standard", seed=12)
    torch.manual_seed(2), torch.rand(7)
    for name in list_attacks():
        assert torch.equal(run(name, seed=5), first[name]), f"{name} is not reproducible from its seed"


def test_create_attack_rejects_bad_input():
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match="unknown attack"):
        create_attack("fgsm-magic", pipe, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        create_attack("bpda-eot", pipe, eps=-0.1)
    with pytest.raises(ValueError, match="norm"):
        create_attack("bpda-eot", pipe, eps=0.1, norm="L0")
    with pytest.raises(ValueError, match="unknown parameters"):
        create_attack("bpda-eot", pipe, eps=0.1, n_queries=10)
    with pytest.raises(ValueError, match="unknown parameters"):  # a chain option means nothing to BPDA
        create_attack("bpda-eot", pipe, eps=0.1, tau=0.5)
    with pytest.raises(ValueError, match="gradient must be one of"):
        PurifyThenClassify(pipe, gradient="magic")
    with pytest.raises(ValueError, match="loss must be one of"):
        create_attack("bpda-eot", pipe, eps=0.1, loss="hinge")
    for option, value in (("gradient", "exact"), ("guidance_feedback", False)):  # the name fixes the gradient
        with pytest.raises(ValueError, match=f"parameter '{option}' no longer exists.*fixed by its name"):
            create_attack("bpda-eot", pipe, eps=0.1, **{option: value})
    with pytest.raises(ValueError, match="fixed by its name"):
        create_attack("autoattack-rand", pipe, eps=0.1, version="standard")


# ----------------------------------------------------------------------------- through the registry, defended


@pytest.fixture(scope="module")
def mnist():
    x, y = to_tensors(load_image_dataset("mnist5k", split="test"), 1, indices=range(8))
    return x, y


def shipped_with(preset=None):
    """The shipped pipeline, with its own recipe or (a preset resets every option) with `preset`'s."""
    pipe = MimicDiffusionPipeline.from_pretrained(SHIPPED)
    if preset is not None:
        pipe.scheduler = MimicDiffusionScheduler.from_preset(preset, base_config=pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def defended_accuracy(pipe, x, y, steps):
    return (PurifyThenClassify(pipe, num_inference_steps=steps, seed=1).predict(x)[0] == y).float().mean().item()


DIFFPURE_STEPS = 20  # DiffPure runs the last 10% of them: 2 stochastic purification steps from t* = 0.1
# The gradient attacks, at budgets that run in seconds on the shipped MNIST pipeline; the chain gradients without
# per-step checkpointing (the same gradient, tests/test_gradients.py, with nothing recomputed in the backward).
REGISTRY_BUDGETS = {
    "pgd-classifier": ("Linf", 0.3, dict(steps=10)),
    "pgd-eot": ("Linf", 0.3, dict(steps=3, checkpoint_steps=False)),
    "bpda-eot": ("Linf", 0.3, dict(steps=3)),
    "exact-pgd-eot": ("Linf", 0.3, dict(steps=3, tau=0.5, loss="margin", checkpoint_steps=False)),
    "feedback-cut-pgd-eot": ("Linf", 0.3, dict(steps=3, tau=0.5, loss="margin", checkpoint_steps=False)),
    "autoattack-standard": ("Linf", 0.3, dict(n_iter=2, n_queries=5, n_target_classes=1)),
    "autoattack-rand": ("Linf", 0.3, dict(n_iter=2, eot=1)),
    # C&W is a minimum-norm attack without EOT: against a stochastic purifier it needs a larger l_2 ball
    "cw-l2": ("L2", 6.0, dict(c=10.0, kappa=2.0, steps=50, lr=0.1)),
}


def test_the_registry_budgets_cover_every_gradient_attack():
    assert set(REGISTRY_BUDGETS) == set(list_attacks(gradient_free=False))


@pytest.fixture(scope="module")
def diffpure(mnist):
    """The shipped pipeline with the DiffPure preset, its clean accuracy and its accuracy under random noise
    of each threat's size (shared by every attack: attacks do not change the pipeline)."""
    x, y = mnist
    pipe = shipped_with("diffpure")
    noise = {
        (norm, eps): defended_accuracy(pipe, random_perturbation(x, eps, norm), y, DIFFPURE_STEPS)
        for norm, eps, _ in REGISTRY_BUDGETS.values()
    }
    return pipe, defended_accuracy(pipe, x, y, DIFFPURE_STEPS), noise


@pytest.mark.parametrize("name", list(REGISTRY_BUDGETS))
def test_registry_attack_breaks_diffpure_where_noise_does_not(mnist, diffpure, name):
    """On the shipped pipeline with the DiffPure preset (plain autograd is a real attack there), every
    gradient attack created by name takes accuracy well below clean and below a random perturbation of its
    size, inside its eps ball."""
    x, y = mnist
    pipe, clean, noises = diffpure
    norm, eps, params = REGISTRY_BUDGETS[name]
    noise = noises[norm, eps]
    x_adv = create_attack(name, pipe, eps=eps, norm=norm, seed=0, num_inference_steps=DIFFPURE_STEPS, **params)(x, y)
    attacked = defended_accuracy(pipe, x_adv, y, DIFFPURE_STEPS)
    assert clean == 1.0 and noise >= 0.75
    assert attacked <= noise - 0.25, f"{name}: clean {clean}, noise {noise}, attacked {attacked}"
    if ATTACKS[name].adaptive:  # the non-adaptive PGD on the bare classifier only has to beat noise
        assert attacked <= 0.5, f"{name}: clean {clean}, noise {noise}, attacked {attacked}"
    size = (x_adv - x).abs().flatten(1).max(1).values if norm == "Linf" else (x_adv - x).flatten(1).norm(dim=1)
    assert size.max() <= eps * (1 + 1e-5)


def test_feedback_cut_breaks_the_guided_chain_where_noise_does_not(mnist):
    """On the shipped UNet and classifier with a guided MimicDiffusion recipe (guidance scale 16, short range
    down: 6 of 20 steps guided; set here, so the test does not follow the shipped default's recipe), the
    feedback-cut gradient attack created by name takes accuracy well below a random perturbation of its
    size, on 4 images."""
    x, y = mnist[0][:4], mnist[1][:4]
    pipe, steps = shipped_with().with_scheduler_options(guidance_scale=16.0, sr_direction="down"), 20
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler.set_timesteps(steps)
    assert sum(bool(pipe.scheduler.in_window(t)) for t in pipe.scheduler.purification_timesteps()) == 6
    noise = defended_accuracy(pipe, random_perturbation(x, 0.3, "Linf"), y, steps)
    # without per-step checkpointing (same gradient, tests/test_gradients.py) the backward recomputes nothing
    x_adv = create_attack(
        "feedback-cut-pgd-eot",
        pipe,
        eps=0.3,
        seed=0,
        num_inference_steps=steps,
        steps=2,
        tau=0.5,
        loss="margin",
        checkpoint_steps=False,
    )(x, y)
    assert noise >= 0.75 and defended_accuracy(pipe, x_adv, y, steps) <= 0.5


# ----------------------------------------------------------------------------- randomized defenses


class NoisyMargin(torch.nn.Module):
    """A randomized toy defense with two classes: logit margin 1 + 5 (mean(x) - 0.5) plus N(0, 1) noise per
    forward. Label 0 at x = 0.5 is right on most draws (84%) but wrong on some; within eps 0.3 the noise-free
    margin can reach -0.5, so a sample is truly broken (wrong on most draws) only if the attack moves it."""

    def __init__(self, seed=0):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # attacks read the device
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def true_margin(x):
        return 1 + 5 * (x.flatten(1).mean(1) - 0.5)

    def forward(self, x):
        margin = self.true_margin(x) + torch.randn(len(x), generator=self.generator)
        return torch.stack([margin, torch.zeros_like(margin)], 1)


def test_draw_aware_square_breaks_a_randomized_defense_that_single_draw_square_gives_up_on():
    """Single-draw Square skips samples one draw misclassifies, stops at the first lucky draw and returns the
    clean input unless one final draw agrees, so most samples come back still right on most draws. With eot=8
    every query is the mean of 8 draws: a candidate wrong on one draw only is not accepted, and the search
    goes on until the samples are wrong on average."""
    x, y = torch.full((16, 1, 16, 16), 0.5), torch.zeros(16, dtype=torch.long)
    broken = {}
    for eot in (1, 8):
        square = Square(NoisyMargin(), eps=0.3, n_queries=100, eot=eot, seed=0)
        x_adv = square(x, y)
        assert (x_adv - x).abs().max() <= 0.3 + 1e-6 and square.diagnostics["eot"] == eot
        broken[eot] = int((NoisyMargin.true_margin(x_adv) <= 0).sum())
    assert broken[1] <= 8 and broken[8] >= 12, broken


def test_single_draw_attacks_are_flagged():
    assert weak_against_randomized("autoattack-standard") and weak_against_randomized("autoattack-rand")
    assert weak_against_randomized("square", {"n_queries": 20})  # the single-draw Square of earlier records
    assert not weak_against_randomized("square", {"n_queries": 20, "eot": 4})
    assert not weak_against_randomized("feedback-cut-pgd-eot", {"steps": 10})
    assert "weak against randomized defenses" in ATTACKS["autoattack-standard"].summary


def test_draw_aware_square_runs_through_the_registry_on_per_sample_streams():
    pipe = tiny_pipeline(step_size_rule="constant", guidance_scale=30.0)
    x, y = torch.rand(1, 1, 16, 16, generator=gen(0)), torch.tensor([1])

    def run():
        attack = create_attack("square", pipe, eps=0.3, seed=[7], n_queries=3, eot=2, num_inference_steps=2)
        return attack(x, y), attack.diagnostics

    (first, diagnostics), (again, _) = run(), run()
    assert torch.equal(first, again) and diagnostics["eot"] == 2
    with pytest.raises(ValueError, match="eot must be an integer >= 1"):
        create_attack("square", pipe, eps=0.3, eot=0)
