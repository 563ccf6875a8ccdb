"""The chip's cost rates as the mock's virtual clock holds them, and its cycle arithmetic.

The mock chip keeps every rate in thousandths per cycle ("per kilocycle", firmware/hal/hal.h) so that
costs are exact integers. The host passes each rate with three decimals (cluster/mock.py
profile_args); this module rounds the profile's figures the same way, so the model charges exactly
the cycles the mock charges: roofline per hal_account() call, latency plus bytes per link message.
"""

from __future__ import annotations

from dataclasses import dataclass


def _milli(x: float) -> int:
    """A rate as the mock parses it: formatted with 3 decimals, read back in thousandths."""
    whole, _, frac = f"{x:.3f}".partition(".")
    return int(whole) * 1000 + int(frac)


@dataclass(frozen=True)
class ChipRates:
    clock_hz: float
    macs_per_kcycle: int
    onchip_bytes_per_kcycle: int
    offchip_bytes_per_kcycle: int
    link_bytes_per_kcycle: int
    link_latency_cycles: int

    @classmethod
    def from_profile(cls, profile) -> "ChipRates":
        return cls(
            clock_hz=float(profile.clock_hz),
            macs_per_kcycle=_milli(profile.macs_per_cycle),
            onchip_bytes_per_kcycle=_milli(profile.onchip_bytes_per_cycle()),
            offchip_bytes_per_kcycle=_milli(profile.offchip_bytes_per_cycle()),
            link_bytes_per_kcycle=_milli(max(profile.link_bytes_per_cycle, 0.001)),
            link_latency_cycles=int(round(profile.link_latency_cycles)),
        )

    def account(self, macs: int, onchip: int, offchip: int) -> int:
        """Cycles one hal_account(macs, onchip, offchip) call charges: the slowest of the three."""
        return max(cost_cycles(macs, self.macs_per_kcycle), cost_cycles(onchip, self.onchip_bytes_per_kcycle),
                   cost_cycles(offchip, self.offchip_bytes_per_kcycle))

    def active(self, macs: int, onchip: int) -> int:
        """Cycles of a charge in which the core works (compute or on-chip streaming), not stalled off chip."""
        return max(cost_cycles(macs, self.macs_per_kcycle), cost_cycles(onchip, self.onchip_bytes_per_kcycle))

    def offchip(self, offchip: int) -> int:
        return cost_cycles(offchip, self.offchip_bytes_per_kcycle)

    def wire(self, nbytes: int) -> int:
        """Cycles nbytes occupy a link (without the per-message latency)."""
        return cost_cycles(nbytes, self.link_bytes_per_kcycle)

    def send(self, nbytes: int) -> int:
        """Cycles the sender's clock advances for one message (hal_link_send on the mock)."""
        return self.link_latency_cycles + self.wire(nbytes)

    def ms(self, cycles: float) -> float:
        return cycles / self.clock_hz * 1e3


def cost_cycles(amount: int, rate_per_kcycle: int) -> int:
    """ceil(amount / (rate / 1000)) in integers, as posix_cost_cycles does (rate 0 counts as 1)."""
    rate = rate_per_kcycle or 1
    q, r = divmod(int(amount), rate)
    return q * 1000 + (r * 1000 + rate - 1) // rate
