"""`gm_centered_adaptive_bc`: the project's seed conversation (gemini-3.1-pro-preview), dpsgd.md §11.6.

The seed's second mechanism ("DP-GC-Adapt"). Tested.
Idea: clip residuals around a bias-corrected EMA centre, with a quantile-tracked threshold.
State: m (zero tensors, made on the first call), step count t (0-based, counted here; the
driver's `step` argument is the same number), threshold C (starts at max_grad_norm).
Each step:
  1. centre m_hat = m / (1 - 0.9^(t+1)); residuals c_i = g_i - m_hat; global L2 norms;
  2. C <- clamp(C * exp(0.2 * (frac(||c_i|| > C) - 0.5)), 1e-4, 100), before clipping;
  3. clip residuals to C, average, add Gaussian noise of std sigma * C / B;
  4. output = m_hat + noised mean; m <- 0.9 m + 0.1 output.
get_effective_sigma reports the calibrated sigma.
Privacy caveat: the threshold update uses the exact, UN-NOISED clipped fraction of the
private batch and sets this step's noise scale (the `adaptive_clipping` leak), not accounted.
[UNCERTAIN] the clip factor's zero-norm guard is not given; the baselines' 1e-8 form is used.
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.noise_multiplier = noise_multiplier
        self.clip = max_grad_norm
        self.beta = 0.9
        self.target_quantile = 0.5
        self.adapt_rate = 0.2
        self.clip_min, self.clip_max = 1e-4, 100.0
        self.m = None
        self.t = 0

    def clip_and_noise(self, per_sample_grads, step, epoch):
        if self.m is None:
            self.m = [torch.zeros_like(g[0]) for g in per_sample_grads]
        batch = per_sample_grads[0].shape[0]
        correction = 1 - self.beta ** (self.t + 1)
        centre = [m / correction for m in self.m]
        residuals = [g - c.unsqueeze(0) for g, c in zip(per_sample_grads, centre)]
        norms = torch.sqrt(sum(r.reshape(batch, -1).pow(2).sum(dim=1) for r in residuals))
        above = (norms > self.clip).float().mean().item()  # un-noised private statistic
        self.clip *= math.exp(self.adapt_rate * (above - self.target_quantile))
        self.clip = min(max(self.clip, self.clip_min), self.clip_max)
        factors = (self.clip / norms.clamp(min=1e-8)).clamp(max=1.0)
        noise_std = self.noise_multiplier * self.clip / batch
        out = []
        for r, c in zip(residuals, centre):
            mean = (r * factors.view(-1, *([1] * (r.dim() - 1)))).mean(dim=0)
            out.append(c + mean + noise_std * torch.randn_like(mean))
        self.m = [self.beta * m + (1 - self.beta) * o for m, o in zip(self.m, out)]
        self.t += 1
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
