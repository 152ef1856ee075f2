"""`ema_centered_adaptive_clip`: anthropic--claude-opus-4.6, final strategy (dpsgd.md §11.1).

The conversation's only edit; its test returned nothing. Untested.
Idea: clip residuals around a running centre c instead of raw gradients, with a
quantile-tracked threshold. State: c (one zero tensor per parameter tensor, made on the
first call) and C (starts at max_grad_norm). Each step:
  1. residuals r_i = g_i - c; global L2 norms ||r_i|| (all tensors together);
  2. b = fraction with ||r_i|| > C; C <- clamp(C * exp(0.2 * (b - 0.5)), 0.005, 50);
  3. clip residuals to the updated C and average;
  4. output = c + mean residual + Gaussian noise of std sigma * C / B;
  5. c <- 0.9 c + 0.1 output.
get_effective_sigma reports the calibrated sigma.
Privacy caveat: centring on c is post-processing of earlier releases, so the sensitivity is
C and the sigma ratio is right; but the threshold update uses an UN-NOISED count of the
current private batch and sets this step's noise scale (the `adaptive_clipping` leak),
which is not accounted.
[UNCERTAIN] the spec does not give the clip factor's zero-norm guard; the baselines' form
min(1, C / max(||r_i||, 1e-8)) is used.
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.noise_multiplier = noise_multiplier
        self.clip = max_grad_norm
        self.beta = 0.9
        self.target_quantile = 0.5
        self.adapt_rate = 0.2
        self.clip_min, self.clip_max = 0.005, 50.0
        self.center = None

    def clip_and_noise(self, per_sample_grads, step, epoch):
        if self.center is None:
            self.center = [torch.zeros_like(g[0]) for g in per_sample_grads]
        batch = per_sample_grads[0].shape[0]
        residuals = [g - c.unsqueeze(0) for g, c in zip(per_sample_grads, self.center)]
        norms = torch.sqrt(sum(r.reshape(batch, -1).pow(2).sum(dim=1) for r in residuals))
        above = (norms > self.clip).float().mean().item()  # un-noised private statistic
        self.clip *= math.exp(self.adapt_rate * (above - self.target_quantile))
        self.clip = min(max(self.clip, self.clip_min), self.clip_max)
        factors = (self.clip / norms.clamp(min=1e-8)).clamp(max=1.0)
        noise_std = self.noise_multiplier * self.clip / batch
        out = []
        for r, c in zip(residuals, self.center):
            mean = (r * factors.view(-1, *([1] * (r.dim() - 1)))).mean(dim=0)
            out.append(c + mean + noise_std * torch.randn_like(mean))
        self.center = [self.beta * c + (1 - self.beta) * o for c, o in zip(self.center, out)]
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
