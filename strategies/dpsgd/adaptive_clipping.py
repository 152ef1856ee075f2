"""Baseline `adaptive_clipping` (dpsgd.md §10.3; quantile tracking after Andrew et al. 2021).

A clipping threshold C starts at max_grad_norm. Every step, before clipping, b = the
fraction of the batch whose global gradient norm is strictly above C, and
C <- C * exp(0.2 * (b - 0.5)) (target quantile 0.5, rate 0.2), clamped to [0.01, 100].
The gradients are then clipped to the updated C (factor min(1, C / max(||g_i||, 1e-8))),
averaged, and given Gaussian noise of std sigma * C / B. get_effective_sigma reports the
calibrated sigma.
Privacy caveat: b is computed from the private batch and used WITHOUT noise (Andrew et al.
privatise this count and spend budget on it); since the updated C also sets this step's
noise scale, the noise level itself is data-dependent. This leak is not accounted.
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.noise_multiplier = noise_multiplier
        self.clip = max_grad_norm
        self.target_quantile = 0.5
        self.adapt_rate = 0.2
        self.clip_min, self.clip_max = 0.01, 100.0

    def clip_and_noise(self, per_sample_grads, step, epoch):
        batch = per_sample_grads[0].shape[0]
        norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in per_sample_grads))
        above = (norms > self.clip).float().mean().item()  # un-noised private statistic
        self.clip *= math.exp(self.adapt_rate * (above - self.target_quantile))
        self.clip = min(max(self.clip, self.clip_min), self.clip_max)
        factors = (self.clip / norms.clamp(min=1e-8)).clamp(max=1.0)
        noise_std = self.noise_multiplier * self.clip / batch
        out = []
        for g in per_sample_grads:
            mean = (g * factors.view(-1, *([1] * (g.dim() - 1)))).mean(dim=0)
            out.append(mean + noise_std * torch.randn_like(mean))
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
