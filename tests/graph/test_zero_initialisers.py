"""zero_initialisers acts only in the thread that entered it: a loader thread tracing graphs
must not turn another thread's real initialisation into zeros."""
import threading

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ghn_jax.graph.tracer import record_initialisers, zero_initialisers


def test_another_threads_init_is_untouched():
    inside, done = threading.Event(), threading.Event()

    def tracer_thread():
        with zero_initialisers():
            inside.set()
            done.wait(60)
    t = threading.Thread(target=tracer_thread)
    t.start()
    try:
        assert inside.wait(60)
        p = nn.Dense(4).init(jax.random.PRNGKey(0), jnp.ones((1, 3)))["params"]
        assert float(jnp.abs(p["kernel"]).sum()) > 0
        with zero_initialisers():                    # and in this thread, while the other is in
            z = nn.Dense(4).init(jax.random.PRNGKey(0), jnp.ones((1, 3)))["params"]
        assert float(jnp.abs(z["kernel"]).sum()) == 0
    finally:
        done.set()
        t.join()
    p = nn.Dense(4).init(jax.random.PRNGKey(0), jnp.ones((1, 3)))["params"]     # patch removed
    assert float(jnp.abs(p["kernel"]).sum()) > 0


def test_recorded_initialisers_are_the_models_own():
    rec = record_initialisers(nn.Dense(4), (1, 3))
    init_fn, args, _ = rec[("params", "kernel")]
    w = np.asarray(init_fn(jax.random.PRNGKey(0), *args))
    assert w.shape == (3, 4) and np.abs(w).sum() > 0
