"""Baseline `standard_dpsgd` (dpsgd.md §10.1; Abadi et al. 2016), also the shipped default editable block.

Each example's gradient is clipped to global L2 norm (over all parameter tensors together)
at most C0 = max_grad_norm, with factor min(1, C0 / max(||g_i||, 1e-8)); the batch mean of
the clipped gradients gets i.i.d. Gaussian noise of std sigma * C0 / B on every coordinate,
where B is the actual batch size. get_effective_sigma always reports the calibrated sigma.
Privacy: consistent with the benchmark's accountant (sensitivity C0, multiplier sigma) --
within that accountant's own simplifications (dpsgd.md §8.4).
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier

    def clip_and_noise(self, per_sample_grads, step, epoch):
        batch = per_sample_grads[0].shape[0]
        norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in per_sample_grads))
        factors = (self.max_grad_norm / norms.clamp(min=1e-8)).clamp(max=1.0)
        noise_std = self.noise_multiplier * self.max_grad_norm / batch
        out = []
        for g in per_sample_grads:
            clipped = g * factors.view(-1, *([1] * (g.dim() - 1)))
            mean = clipped.mean(dim=0)
            out.append(mean + noise_std * torch.randn_like(mean))
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
