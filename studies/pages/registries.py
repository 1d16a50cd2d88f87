"""Pages generated from the library's registries: attacks, presets and scheduler options."""

from __future__ import annotations

import inspect

from mimic_diffusers import PRESETS, MimicDiffusionScheduler
from mimic_diffusers.attacks import ATTACKS, DEFENSE_OPTIONS
from mimic_diffusers.scheduling_mimic import OPTION_DOCS

from .common import render


def attacks() -> str:
    sources = ["`mimic_diffusers.attacks.ATTACKS`", "`mimic_diffusers.attacks.DEFENSE_OPTIONS`"]
    return render("attacks.md.j2", sources, attacks=sorted(ATTACKS.items()), options=DEFENSE_OPTIONS)


def presets() -> str:
    return render("presets.md.j2", ["`mimic_diffusers.PRESETS`"], presets=PRESETS)


def options() -> str:
    defaults = inspect.signature(MimicDiffusionScheduler.__init__).parameters
    sources = ["`OPTION_DOCS` in `mimic_diffusers/scheduling_mimic.py`"]
    return render("options.md.j2", sources, docs=OPTION_DOCS, defaults=defaults)
