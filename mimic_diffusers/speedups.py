"""Opt-in speed-ups of the pipeline's UNet call, as a mixin: every toggle is off or result-preserving by
default, and `tests/test_speedups.py` compares each one with the plain path."""

from __future__ import annotations

from typing import Optional

import torch


class SpeedupsMixin:
    """Speed-up toggles for a pipeline with a `unet` component; the pipeline calls the UNet as `self._unet`."""

    # Unguided steps run under `torch.inference_mode` (no autograd bookkeeping; same results).
    inference_mode_outside_window = True
    # Batched kernels sum in a batch-size dependent order (~1e-6 differences); per-sample UNet calls
    # make a result bit-identical whatever batch it is in, at the cost of batching speed.
    batch_invariant = False
    # Opt-in mixed precision for the UNet forward (None: full precision). Not bit-identical: see
    # `enable_autocast`.
    autocast_dtype: Optional[torch.dtype] = None

    def enable_channels_last(self):
        """Store UNet weights channels-last (faster convolutions on many CPUs/GPUs; same results)."""
        self.unet.to(memory_format=torch.channels_last)
        return self

    def enable_batch_invariance(self, enabled: bool = True):
        """Bit-identical outputs across batch compositions (UNet called per sample; slower)."""
        self.batch_invariant = enabled
        return self

    def enable_autocast(self, dtype: Optional[torch.dtype] = torch.bfloat16):
        """Opt-in mixed precision: the UNet runs under `torch.autocast(dtype)` (fp16/bf16 on GPU, bf16
        on CPU); its output is cast back, so the scheduler step and the guidance stay in full precision.
        Results change at the level of the lower precision (tests bound the difference on the smooth,
        unguided path); `dtype=None` turns it off."""
        if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"enable_autocast: dtype must be torch.float16, torch.bfloat16 or None, got {dtype!r}")
        device_type = self._execution_device.type
        if dtype is not None and not torch.amp.is_autocast_available(device_type):
            raise ValueError(f"enable_autocast: torch has no autocast for device type {device_type!r}")
        self.autocast_dtype = dtype
        return self

    def compile_unet(self, **compile_kwargs):
        """Opt-in `torch.compile` of the UNet (first call is slow; not used by the attack path's double
        backward, which compiled graphs do not support)."""
        self.unet = torch.compile(self.unet, **compile_kwargs)
        return self

    def _unet(self, latents, t):
        """The UNet's noise prediction for `latents` at timestep `t`, under the enabled toggles."""
        if self.autocast_dtype is not None:
            with torch.autocast(latents.device.type, dtype=self.autocast_dtype):
                return self._unet_forward(latents, t).to(latents.dtype)
        return self._unet_forward(latents, t)

    def _unet_forward(self, latents, t):
        """`unet(latents, t).sample`, one sample at a time under `batch_invariant`."""
        if self.batch_invariant and latents.shape[0] > 1:
            return torch.cat([self.unet(latents[i : i + 1], t).sample for i in range(latents.shape[0])])
        return self.unet(latents, t).sample
