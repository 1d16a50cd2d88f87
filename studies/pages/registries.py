"""Pages generated from the library's registries: attacks, presets and scheduler options."""

from __future__ import annotations

from .common import header


def attacks() -> str:
    from mimic_diffusers.attacks import ATTACKS, DEFENSE_OPTIONS

    text = header("`mimic_diffusers.attacks.ATTACKS`", "`mimic_diffusers.attacks.DEFENSE_OPTIONS`")
    text += "| name | gradient | adaptive | what runs | defense options it accepts |\n|---|---|---|---|---|\n"
    for name in sorted(ATTACKS):
        e = ATTACKS[name]
        adaptive = "gradient-free" if e.gradient_free else ("yes" if e.adaptive else "no (an upper bound)")
        options = ", ".join(f"`{o}`" for o in DEFENSE_OPTIONS[e.gradient])
        # a gradient-free attack runs the defense without gradients: its entry's gradient only picks the defense
        gradient = "none (scores only)" if e.gradient_free else e.gradient
        text += f"| `{name}` | {gradient} | {adaptive} | {e.summary} | {options} |\n"
    return text


def presets() -> str:
    from mimic_diffusers import PRESETS

    text = header("`mimic_diffusers.PRESETS`")
    text += "| preset | overrides of the library defaults |\n|---|---|\n"
    for name, overrides in PRESETS.items():
        text += f"| `{name}` | " + (", ".join(f"`{k}={v!r}`" for k, v in overrides.items()) or "none") + " |\n"
    return text


def options() -> str:
    import inspect

    from mimic_diffusers import MimicDiffusionScheduler
    from mimic_diffusers.scheduling_mimic import OPTION_DOCS

    defaults = inspect.signature(MimicDiffusionScheduler.__init__).parameters
    text = header("`OPTION_DOCS` in `mimic_diffusers/scheduling_mimic.py`")
    text += "| option | library default | what it does |\n|---|---|---|\n"
    for name, doc in OPTION_DOCS.items():
        text += f"| `{name}` | `{defaults[name].default!r}` | {doc} |\n"
    return text
