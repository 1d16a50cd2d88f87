"""Keep library attacks that (re)seed torch's global RNG from leaking that state to the caller."""

from __future__ import annotations

import torch


def private_global_rng(device: torch.device):
    """pyautoattack seeds the global RNG from its own `seed` at every run: inside this context that
    stream is private, so the caller's global RNG (and any attack run after) is left as it was."""
    devices = [device] if torch.device(device).type == "cuda" else []
    return torch.random.fork_rng(devices=devices)
