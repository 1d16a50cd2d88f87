"""MimicDiffusion guidance as small pure functions of tensors (no diffusers import: testable alone).

Notation (paper): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps; x0_hat is the scheduler's
`pred_original_sample`; the reference y is the adversarial image x_adv in the UNet's [-1, 1] space.

    long range   D_l = dist(x0_hat, y)
    short range  D_s = dist(H(x0_hat), H(y))          H = bicubic SR operator (DPS "SR x4")
    guidance     g   = -grad_{x_t} [ lambda_l * D_l + lambda_s * D_s ]   (lambdas held constant)
    x_{t-1}     <- x_{t-1} + g

Every distance is computed *per sample* (a mean over that sample's pixels), and the step sizes are
per sample too, so no image's result depends on the batch it shares.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- sign surrogates
# |r| has derivative sign(r), whose own derivative is 0 almost everywhere: the purified output then
# depends on x_adv only through a piecewise-constant function and plain autograd sees no gradient.
# The attack path swaps in a surrogate derivative; purification always uses the exact one.


class _SurrogateSign(torch.autograd.Function):
    """Forward: sign(u). Backward: d/du tanh(u / tau) (straight-through with a smooth window)."""

    @staticmethod
    def forward(ctx, u, tau):
        ctx.save_for_backward(u)
        ctx.tau = tau
        return torch.sign(u)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(u / ctx.tau) ** 2) / ctx.tau, None


class _AbsWithSurrogate(torch.autograd.Function):
    """Forward: |r|. Backward: grad * sign_fn(r), built from differentiable ops (double backward)."""

    @staticmethod
    def forward(ctx, r, sign_fn):
        ctx.save_for_backward(r)
        ctx.sign_fn = sign_fn
        return r.abs()

    @staticmethod
    def backward(ctx, grad):
        (r,) = ctx.saved_tensors
        return grad * ctx.sign_fn(r), None


def ste_sign(u: torch.Tensor, tau: float = 0.05) -> torch.Tensor:
    return _SurrogateSign.apply(u, tau)


def tanh_sign(u: torch.Tensor, tau: float = 0.05) -> torch.Tensor:
    return torch.tanh(u / tau)


SIGN_SURROGATES: Dict[str, Callable] = {"ste": ste_sign, "tanh": tanh_sign}


def make_abs(sign_surrogate: Optional[str] = None, tau: float = 0.05) -> Callable:
    """|.| whose derivative is the exact sign (None), or a surrogate ('ste' or 'tanh')."""
    if sign_surrogate is None:
        return torch.abs
    if sign_surrogate not in SIGN_SURROGATES:
        raise ValueError(f"sign_surrogate must be None or one of {sorted(SIGN_SURROGATES)}, got {sign_surrogate!r}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    fn = SIGN_SURROGATES[sign_surrogate]
    return lambda r: _AbsWithSurrogate.apply(r, lambda u: fn(u, tau))


# ----------------------------------------------------------------------------- distances


def l1_distance(a: torch.Tensor, b: torch.Tensor, abs_fn: Callable = torch.abs) -> torch.Tensor:
    """Per-sample Manhattan distance, normalised by the pixel count: mean |a - b| -> (B,)."""
    return abs_fn(a - b).flatten(1).mean(1)


def l2_distance(a: torch.Tensor, b: torch.Tensor, abs_fn: Callable = torch.abs) -> torch.Tensor:
    """Per-sample Euclidean distance, normalised: sqrt(mean (a - b)^2) -> (B,)."""
    return ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-12).sqrt()


DISTANCES: Dict[str, Callable] = {"l1": l1_distance, "l2": l2_distance}

# ----------------------------------------------------------------------------- SR operator H


def sr_operator(x: torch.Tensor, factor: int = 4, direction: str = "down") -> torch.Tensor:
    """The DPS super-resolution operator H.

    'down' is DPS's forward operator (antialiased bicubic downsample by `factor`): the short-range term
    then compares the low-frequency content. 'up' is the paper's wording (bicubic upsample), which on
    an L1 mean only re-weights the long-range term.
    """
    if direction == "down":
        return F.interpolate(x, scale_factor=1.0 / factor, mode="bicubic", antialias=True, align_corners=False)
    if direction == "up":
        return F.interpolate(x, scale_factor=float(factor), mode="bicubic", align_corners=False)
    raise ValueError(f"sr_direction must be 'down' or 'up', got {direction!r}")


# ----------------------------------------------------------------------------- step sizes
# Each rule maps (scale, alpha_bar_t, per-sample distance) to a per-sample multiplier lambda.

STEP_SIZE_RULES: Dict[str, Callable] = {
    # paper: R_t = 1 / sigma(t)^2 with sigma(t) = alpha_bar_t (the paper's x_t parametrisation)
    "paper": lambda scale, abar, dist: scale / abar**2 * torch.ones_like(dist),
    # DPS: zeta / ||residual||, i.e. the gradient of log-distance: scale free in the residual size
    "dps": lambda scale, abar, dist: scale / dist.clamp_min(1e-8),
    "constant": lambda scale, abar, dist: scale * torch.ones_like(dist),
    # authors' code: rho * sqrt(alpha_bar) (FreeDoM); theirs divides by the batch size, ours does not
    "official": lambda scale, abar, dist: scale * abar**0.5 * torch.ones_like(dist),
    # GDMP: sqrt(1 - abar) / (m sqrt(abar)) with scale = 1 / m
    "gdmp": lambda scale, abar, dist: scale * ((1 - abar) / abar) ** 0.5 * torch.ones_like(dist),
}
DEFAULT_SCALES = {"paper": 1.0, "dps": 1.0, "constant": 1.0, "official": 3000.0, "gdmp": 1.0}


def rule_scale(rule: str, scale: Optional[float]) -> float:
    """The scale a step-size rule runs with: the given one, else the rule's default."""
    return DEFAULT_SCALES[rule] if scale is None else scale


def step_size(rule: str, scale: Optional[float], alpha_bar: float, dist: torch.Tensor) -> torch.Tensor:
    if rule not in STEP_SIZE_RULES:
        raise ValueError(f"step_size_rule must be one of {sorted(STEP_SIZE_RULES)}, got {rule!r}")
    scale = rule_scale(rule, scale)
    return STEP_SIZE_RULES[rule](scale, float(alpha_bar), dist.detach())


# ----------------------------------------------------------------------------- the guidance loss


def in_guidance_window(timestep: int, num_train_timesteps: int, start: float, end: float) -> bool:
    """True for timesteps t with end * T <= t <= start * T (the paper's s = 50% T down to e = 20% T)."""
    return end * num_train_timesteps <= float(timestep) <= start * num_train_timesteps


def guidance_loss(
    x0_hat: torch.Tensor,
    reference: torch.Tensor,
    *,
    alpha_bar: float,
    distance: str = "l1",
    long_range: bool = True,
    short_range: bool = True,
    sr_factor: int = 4,
    sr_direction: str = "down",
    step_size_rule: str = "paper",
    guidance_scale: Optional[float] = None,
    abs_fn: Callable = torch.abs,
) -> torch.Tensor:
    """sum_i [lambda_l,i D_l,i + lambda_s,i D_s,i]: its gradient w.r.t. x_t is minus the guidance.

    Summing per-sample terms keeps samples independent: d/dx_t^(i) only sees sample i's own terms.
    Both terms share one backward pass.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {sorted(DISTANCES)}, got {distance!r}")
    dist_fn = DISTANCES[distance]
    total = x0_hat.new_zeros(x0_hat.shape[0])
    if long_range:
        d = dist_fn(x0_hat, reference, abs_fn)
        total = total + step_size(step_size_rule, guidance_scale, alpha_bar, d) * d
    if short_range:
        d = dist_fn(
            sr_operator(x0_hat, sr_factor, sr_direction), sr_operator(reference, sr_factor, sr_direction), abs_fn
        )
        total = total + step_size(step_size_rule, guidance_scale, alpha_bar, d) * d
    return total.sum()


def validate_guidance_options(**o):
    """Raise ValueError naming the option for any value outside its documented domain."""
    s, e = o["guidance_window_start"], o["guidance_window_end"]
    if not (0 < s <= 1):
        raise ValueError(f"guidance_window_start must be in (0, 1], got {s}")
    if not (0 <= e < 1):
        raise ValueError(f"guidance_window_end must be in [0, 1), got {e}")
    if not s > e:
        raise ValueError(f"guidance_window_start ({s}) must be greater than guidance_window_end ({e})")
    if not (0 < o["purification_start"] <= 1):
        raise ValueError(f"purification_start must be in (0, 1], got {o['purification_start']}")
    if not (0 <= o["eta"] <= 1):
        raise ValueError(f"eta must be in [0, 1] (0: DDIM, 1: DDPM), got {o['eta']}")
    choices = dict(
        distance=sorted(DISTANCES),
        sr_direction=["down", "up"],
        step_size_rule=sorted(STEP_SIZE_RULES),
        guidance_space=["x0", "xt"],
    )
    for name, allowed in choices.items():
        if o[name] not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {o[name]!r}")
    if not (isinstance(o["sr_factor"], int) and o["sr_factor"] >= 1):
        raise ValueError(f"sr_factor must be an integer >= 1, got {o['sr_factor']!r}")
    reference = o["guidance_reference_steps"]
    if reference is not None and not (isinstance(reference, int) and reference >= 1):
        raise ValueError(f"guidance_reference_steps must be None or an integer >= 1, got {reference!r}")
    scale = o["guidance_scale"]
    if scale is not None and not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale >= 0):
        raise ValueError(
            f"guidance_scale must be None (rule default {DEFAULT_SCALES}) or a finite number >= 0, got {scale!r}"
        )
