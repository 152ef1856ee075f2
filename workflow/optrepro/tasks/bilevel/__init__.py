"""Penalty-based bilevel optimization (shared/tasks/bilevel.md): the toy problem and MNIST data hyper-cleaning.

`config` holds the original's configuration dataclasses without torch; `toy`
the toy problem (a plain one-start-at-a-time reference and the vectorised
computation of all starts at once, checked against it).
"""
