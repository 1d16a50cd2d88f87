"""The scheduler's named recipes, as plain data: the command line lists them without importing diffusers."""

# Named recipes; each is a set of options on top of the library defaults of `MimicDiffusionScheduler` (never on
# top of another scheduler's options: see `MimicDiffusionScheduler.from_preset`).
PRESETS = {
    # the library defaults of MimicDiffusionScheduler (DPS's downsampling H, the rule's default scale)
    "mimic": {},
    # the paper's text: window 50%..20% T, L1, both terms, H = bicubic *up*sample, R_t = 1/abar^2; at
    # guidance_scale=4 it is the shipped MNIST pipeline (docs/method.md, "How the defaults were chosen")
    "mimic-paper": dict(sr_direction="up", step_size_rule="paper", guidance_scale=1.0),
    # the authors' code, made batch independent: window ~79%..11% T, rho = 3000 sqrt(abar),
    # "short range" = nearest-upsampled transpose, i.e. the long-range term counted twice
    "mimic-official": dict(
        guidance_window_start=0.79,
        guidance_window_end=0.11,
        step_size_rule="official",
        short_range=False,
        guidance_scale=6000.0,
    ),
    # DiffPure (Nie et al.): diffuse x_adv to t* = 0.1, denoise, no guidance
    "diffpure": dict(purification_start=0.1, long_range=False, short_range=False),
    # GDMP (Wang et al.): diffuse to t*, guide x_t toward the equally diffused x_adv in every step (MSE)
    "gdmp": dict(
        purification_start=0.36,
        guidance_window_start=1.0,
        guidance_window_end=0.0,
        distance="l2",
        short_range=False,
        guidance_space="xt",
        step_size_rule="gdmp",
        guidance_scale=0.05,
    ),
}
