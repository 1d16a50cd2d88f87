"""Batched EOT: K draws in one chain give what K single-draw chains give (each (draw, image) pair has its
own noise stream), for every gradient the EOT attacks follow; the shared-stream default is unchanged."""

import pytest
import torch
from conftest import tiny_pipeline

from mimic_diffusers.attacks import create_attack


@pytest.mark.parametrize("name", ["bpda-eot", "feedback-cut-pgd-eot", "exact-pgd-eot"])
def test_batched_eot_equals_looped_eot(name):
    # float64: float32 rounding through the second-order chain reaches 1e-3 relative and would hide a real
    # difference
    pipe = tiny_pipeline(guidance_scale=50.0).to(torch.float64)
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([1, 2])
    runs = {}
    chain = {} if name == "bpda-eot" else {"tau": 0.5}
    # 3 draws: one per chain, chains of 2 and 1, all 3 in one chain ("auto": they fit); 4 steps, 2 of them guided
    for eot_batch in (1, 2, "auto"):
        attack = create_attack(
            name, pipe, eps=0.3, seed=5, steps=1, eot=3, num_inference_steps=4, eot_batch=eot_batch, **chain
        )
        assert eot_batch != "auto" or attack.defense.max_draws_per_forward(x, 3) == 3
        grads, loss_grad = [], attack._loss_grad  # one PGD step: the gradient at the start, then at the end

        def spy(*args, loss_grad=loss_grad, grads=grads):
            grads.append(loss_grad(*args))
            return grads[-1]

        attack._loss_grad = spy
        runs[eot_batch] = (attack(x, y), *grads[0], *grads[1])
        assert len(grads) == 2 and attack.draws == 6  # the second gradient used draws 3..5
    for eot_batch in (2, "auto"):
        for looped, batched in zip(runs[1], runs[eot_batch]):
            torch.testing.assert_close(batched, looped, rtol=1e-6, atol=1e-7)
    assert runs[1][1].abs().sum() > 0  # the gradient is not trivially zero


def test_draws_have_their_own_noise_and_the_default_keeps_the_shared_stream():
    pipe = tiny_pipeline()
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    attack = create_attack("bpda-eot", pipe, eps=0.1, seed=3, num_inference_steps=4)
    with torch.no_grad():
        two = attack.defense.forward_draws(x, range(2))
        first, second = attack.defense.forward_draws(x, [0]), attack.defense.forward_draws(x, [1])
        alone = attack.defense.forward_draws(x[1:], [1])  # batch position 0 instead of 1: another stream
    torch.testing.assert_close(two, torch.cat([first, second]))
    assert not torch.allclose(first, second)
    assert attack.eot_batch is None  # stores made before batched EOT resume on the same noise
    assert alone.shape == (1, 10)


def test_eot_batch_rejects_bad_values():
    pipe = tiny_pipeline()
    for bad in (0, -1, "all", 1.5):
        with pytest.raises(ValueError, match="eot_batch"):
            create_attack("bpda-eot", pipe, eps=0.1, eot_batch=bad)
