"""Loss terms summed on the device between two log points, with their finiteness: no host sync inside the step.

Reading a device value on the host (.item(), bool(tensor)) stalls the host until the GPU has drained its queue, so a
loop that checks every loss for nan pays one stall per step. Here each update only adds its terms to running sums;
a nan or inf stays in its sum, so counting the updates after which every sum was still finite dates the first bad
update exactly, and one read at the log point gives the means and that date together.
"""
import torch


class TermSums:
    """add(terms) per update; read() once at the log point."""

    def __init__(self):
        self.sums, self.counts, self.updates = {}, {}, 0
        self.finite_updates = None  # device int64: updates after which every sum was finite

    def add(self, terms):
        """terms: {name: 0-dim tensor}; a name may come and go between updates (a method's phases)."""
        for name, value in terms.items():
            value = value.detach()
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
            self.counts[name] = self.counts.get(name, 0) + 1
        finite = torch.isfinite(torch.stack(list(self.sums.values()))).all()
        if self.finite_updates is None:
            self.finite_updates = torch.zeros((), dtype=torch.int64, device=finite.device)
        self.finite_updates = self.finite_updates + finite
        self.updates += 1

    def read(self):
        """(means, sums, first non-finite update or None): one device sync. A mean is its sum divided by its
        count in the sum's dtype on the device, the same number a loop computing sum / n would log."""
        if not self.updates:
            return {}, {}, None
        names = list(self.sums)
        means = [self.sums[name] / self.counts[name] for name in names]
        # float64 holds every float32 (and bfloat16) value exactly and the update count up to 2**53.
        packed = torch.stack([value.double() for value in (*means, *self.sums.values(), self.finite_updates)])
        values = packed.tolist()
        finite_updates = int(values[-1])
        first_bad_update = finite_updates + 1 if finite_updates < self.updates else None
        return (dict(zip(names, values[:len(names)])), dict(zip(names, values[len(names):2 * len(names)])),
                first_bad_update)
