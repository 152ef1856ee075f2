"""Sparse parity with a 2-layer MLP (shared/tasks/parity.md); the driver is `python -m optrepro.tasks.parity`."""

BENCHMARKS = {"n32-k8": dict(n_features=32, secret_size=8),
              "n50-k8": dict(n_features=50, secret_size=8),
              "n64-k8": dict(n_features=64, secret_size=8)}
# mlsbench: what the original code ran. corrected: what the task text advertised (parity.md §4).
PROTOCOLS = {"mlsbench": {},
             "corrected": dict(num_hidden_secrets=10, num_orderings=10, max_steps=100_000)}
METRICS = {"test_accuracy": "higher", "test_accuracy_std": "lower", "mean_steps": "lower"}
