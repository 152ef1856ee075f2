"""`gm_autos_centered`: the project's seed conversation (gemini-3.1-pro-preview), first mechanism (dpsgd.md §11.6).

Tested. An alias of `ema_centered_autos` (§11.3), shipped under this name so that the seed's
run has its own row; the code is identical.
Idea: AUTO-S normalisation applied to residuals around a running centre mu. The constructor
stores only sigma, gamma = 0.01, beta = 0.9 and mu (zero tensors, made on the first call
because the parameter shapes are only known then); max_grad_norm is unused. Each step:
  1. c_i = g_i - mu; global L2 norms ||c_i||;
  2. c_i / (||c_i|| + 0.01), averaged;
  3. output = mu + mean + Gaussian noise of std sigma / B (sensitivity 1);
  4. mu <- 0.9 mu + 0.1 output (= mu + 0.1 (mean + noise)): no decay, so mu accumulates the
     released normalised residuals (and their noise) and is not tied to the gradient scale.
get_effective_sigma reports the calibrated sigma.
Privacy: consistent with the benchmark's accountant (||normalised c_i|| < 1; mu is
post-processing of released outputs; no data-dependent threshold).
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.noise_multiplier = noise_multiplier
        self.gamma = 0.01
        self.beta = 0.9
        self.mu = None

    def clip_and_noise(self, per_sample_grads, step, epoch):
        if self.mu is None:
            self.mu = [torch.zeros_like(g[0]) for g in per_sample_grads]
        batch = per_sample_grads[0].shape[0]
        centred = [g - mu.unsqueeze(0) for g, mu in zip(per_sample_grads, self.mu)]
        norms = torch.sqrt(sum(c.reshape(batch, -1).pow(2).sum(dim=1) for c in centred))
        factors = 1.0 / (norms + self.gamma)
        noise_std = self.noise_multiplier / batch
        out = []
        for c, mu in zip(centred, self.mu):
            mean = (c * factors.view(-1, *([1] * (c.dim() - 1)))).mean(dim=0)
            out.append(mu + mean + noise_std * torch.randn_like(mean))
        self.mu = [self.beta * mu + (1 - self.beta) * o for mu, o in zip(self.mu, out)]
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
