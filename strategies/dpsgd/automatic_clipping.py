"""Baseline `automatic_clipping` (dpsgd.md §10.2; AUTO-S automatic clipping, Bu et al.).

Each example's gradient is normalised by its global L2 norm (over all parameter tensors):
g_i / (||g_i|| + 0.01), so every processed gradient has norm below 1. The batch mean gets
i.i.d. Gaussian noise of std sigma / B (sensitivity 1; max_grad_norm is not used).
get_effective_sigma reports the calibrated sigma.
Privacy: consistent with the benchmark's accountant (sensitivity bound 1). With C0 = 1 the
noise magnitude equals standard DP-SGD's; small gradients are amplified, large ones shrunk.
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.noise_multiplier = noise_multiplier
        self.gamma = 0.01

    def clip_and_noise(self, per_sample_grads, step, epoch):
        batch = per_sample_grads[0].shape[0]
        norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in per_sample_grads))
        factors = 1.0 / (norms + self.gamma)
        noise_std = self.noise_multiplier / batch
        out = []
        for g in per_sample_grads:
            mean = (g * factors.view(-1, *([1] * (g.dim() - 1)))).mean(dim=0)
            out.append(mean + noise_std * torch.randn_like(mean))
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
