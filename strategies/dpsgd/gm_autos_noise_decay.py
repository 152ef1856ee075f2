"""`gm_autos_noise_decay`: the project's seed conversation (gemini-3.1-pro-preview), dpsgd.md §11.6.

The seed's third mechanism ("AUTO-S-ND"), its final and best one. Tested.
Idea: AUTO-S normalisation g_i / (||g_i|| + 0.01) (global norm; sensitivity 1, no centring,
max_grad_norm unused) with the step-decayed noise multiplier of `noise_decay` (no clip
decay): stage = (epoch - 1) // d with d = max(1, epochs // 4); sigma_epoch = sigma0 * 0.8^stage,
sigma0 = sigma * sqrt((1/T) * sum_epochs P / 0.8^(2 stage)), P = dataset_size // batch_size,
T = P * epochs, so that sum_t 1/sigma_t^2 = T / sigma^2. Noise std sigma_epoch / B.
Privacy caveat: get_effective_sigma reports the CONSTANT calibrated sigma, not the noise
actually added (for E = 5: ~1.72 sigma in epoch 1 down to ~0.70 sigma in epoch 5). The totals agree
only under the benchmark's own accountant (RDP proportional to 1/sigma^2, dpsgd.md §8.4
item 4) and only at the end of training; under a standard accountant fed the per-step
sigma_t the spent epsilon differs, so a corrected protocol must account the per-step sigma_t.
"""


class DPMechanism:
    def __init__(self, max_grad_norm, noise_multiplier, n_params, dataset_size, batch_size, epochs,
                 target_epsilon, target_delta):
        self.noise_multiplier = noise_multiplier
        self.gamma = 0.01
        self.decay = 0.8
        self.decay_interval = max(1, epochs // 4)
        steps_per_epoch = dataset_size // batch_size
        total_steps = steps_per_epoch * epochs
        inverse_sum = sum(steps_per_epoch / self.decay ** (2 * self._stage(e)) for e in range(1, epochs + 1))
        self.sigma0 = noise_multiplier * math.sqrt(inverse_sum / total_steps)

    def _stage(self, epoch):
        return (epoch - 1) // self.decay_interval

    def epoch_sigma(self, epoch):
        return self.sigma0 * self.decay ** self._stage(epoch)

    def clip_and_noise(self, per_sample_grads, step, epoch):
        batch = per_sample_grads[0].shape[0]
        norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in per_sample_grads))
        factors = 1.0 / (norms + self.gamma)
        noise_std = self.epoch_sigma(epoch) / batch
        out = []
        for g in per_sample_grads:
            mean = (g * factors.view(-1, *([1] * (g.dim() - 1)))).mean(dim=0)
            out.append(mean + noise_std * torch.randn_like(mean))
        return out

    def get_effective_sigma(self, step, epoch):
        return self.noise_multiplier
