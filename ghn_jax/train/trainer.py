"""The GHN-3 training loop (§4.5): meta-batches of DeepNets-1M networks on one image batch.

    python -m ghn_jax.train --config configs/smoke.py --workdir /tmp/ghn_smoke

graph -> GHN -> predicted params -> executor -> loss -> GHN gradients -> AdamW, per step:
  * the architectures of step s are a function of (seed, s) (train/archs.py); a background
    thread traces their graphs and compiles the kernels they need one step ahead;
  * images are a global array sharded along the batch over the mesh; each process feeds
    its own rows (data/pipeline.py);
  * the update skips a step whose loss or gradients are not finite, and counts it;
  * checkpoints (orbax) hold params, optimizer state, step, counters and the data
    iterator: a killed run restarted with the same workdir continues bit-identically.
"""
import concurrent.futures
import logging
import os
import signal
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ghn_jax import data as data_lib
from ghn_jax.deepnets.executor import CompileCounter, put_global
from ghn_jax.deepnets.meta import MetaStep
from ghn_jax.errors import GhnError
from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
from ghn_jax.ghn.model import GHN3
from ghn_jax.train import archs, optim, sharding
from ghn_jax.train.checkpoints import Checkpoints
from ghn_jax.train.metrics import Writer

log = logging.getLogger("ghn_jax.train")


class _Preemption:
    """SIGTERM (Cloud TPU / SLURM preemption) asks the loop to save and stop after the
    current step; on several processes jax's preemption sync point makes them agree."""

    def __init__(self):
        self.requested = False
        self._old = signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, *_):
        self.requested = True

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:
            try:
                from jax.experimental import multihost_utils
                if multihost_utils.reached_preemption_sync_point(step):
                    return True
            except Exception:       # preemption service not initialised (e.g. CPU tests)
                pass
        return self.requested

    def restore(self):
        signal.signal(signal.SIGTERM, self._old)


def _ghn_config(cfg) -> GHNConfig:
    return GHNConfig(hid=cfg.hid, layers=cfg.layers, heads=cfg.heads, max_shape=tuple(cfg.max_shape),
                     num_classes=cfg.num_classes, layernorm=cfg.get("layernorm", True))


def _init_fn(module: GHN3, seed: int):
    def init():
        b, n = 1, 3
        return module.init(jax.random.PRNGKey(seed), jnp.zeros((b, n), jnp.int32), jnp.zeros((b, n, 4), jnp.int32),
                           jnp.zeros((b, n, n), jnp.int32), jnp.ones((b, n), bool), method=GHN3.init_all)["params"]
    return init


def _check(config, num_classes: int):
    n_dev = jax.device_count()
    if config.data.batch_size % n_dev:
        raise GhnError(f"data.batch_size {config.data.batch_size} must be a multiple of the {n_dev} devices")
    if config.ghn.num_classes != num_classes:
        raise GhnError(f"the GHN predicts {config.ghn.num_classes}-way classifiers but {config.data.name} has "
                       f"{num_classes} classes: set ghn.num_classes={num_classes}")
    archs.check_image_size(config.deepnets, config.seed, config.data.image_size)


def train(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
    """Runs (or resumes) training in `workdir`; returns the last metrics."""
    num_classes = data_lib.num_classes(config.data.name, config.data.get("data_dir"))
    _check(config, num_classes)
    arch_mode = config.get("parallel", "data") == "arch"
    if arch_mode:
        # architectures spread over processes (each runs its share on its own devices, with the
        # whole image batch, as the reference's DDP ranks do); parameters replicated everywhere
        mesh, local_mesh = sharding.arch_meshes()
        n_groups = mesh.shape["arch"]
        if config.deepnets.meta_batch % n_groups:
            raise GhnError(f"parallel='arch': deepnets.meta_batch {config.deepnets.meta_batch} must be a multiple "
                           f"of the {n_groups} processes")
        if any(rule != "replicate" for _, rule in config.sharding_rules):
            raise GhnError("parallel='arch' keeps a full copy of the GHN on every process: use "
                           "sharding_rules=[('.*', 'replicate')] (or parallel='data' for FSDP)")
        img_sh = sharding.batch_sharding(local_mesh)
        m_local = config.deepnets.meta_batch // n_groups
        first = jax.process_index() * m_local
    else:
        mesh = local_mesh = sharding.make_mesh(config.mesh)
        img_sh = sharding.batch_sharding(mesh)
    module = ghn_module(_ghn_config(config.ghn))
    steps_per_epoch = config.get("steps_per_epoch") or data_lib.steps_per_epoch(config.data)
    total = config.get("total_steps") or config.optim.epochs * steps_per_epoch
    lr_fn = optim.schedule(config.optim, steps_per_epoch)
    tx = optim.make(config.optim)

    init = _init_fn(module, config.seed)
    p_sh = sharding.param_shardings(jax.eval_shape(init), mesh, config.sharding_rules)
    o_abs = jax.eval_shape(lambda: tx.init(init()))
    # optimizer moments are sharded like their parameters, scalars (count, lr) replicated
    rep = sharding.replicated(mesh)
    o_sh = optax.tree_map_params(tx, lambda _, s: s, o_abs, p_sh, transform_non_params=lambda _: rep)

    def fresh():
        params = jax.jit(init, out_shardings=p_sh)()
        if config.get("init_from"):
            from ghn_jax.ghn.hub import load_ghn
            cfg_ckpt, loaded = load_ghn(config.init_from, trust_pickle=config.get("trust_pickle", False))
            if cfg_ckpt != _ghn_config(config.ghn):
                raise GhnError(f"init_from {config.init_from} is a {cfg_ckpt}, the config asks for "
                               f"{_ghn_config(config.ghn)}: make config.ghn match the checkpoint")
            params = jax.tree_util.tree_map(lambda a, s: jax.device_put(np.asarray(a), s), loaded, p_sh)
        opt_state = jax.jit(tx.init, out_shardings=o_sh)(params)
        return params, opt_state

    ckpts = Checkpoints(os.path.join(workdir, "checkpoints"), keep=config.checkpoint.keep,
                        async_save=config.checkpoint.get("async_save", True))
    abstract = {"params": _with_sharding(jax.eval_shape(init), p_sh),
                "opt_state": _with_sharding(o_abs, o_sh),
                "step": np.zeros((), np.int64), "nan_skipped": np.zeros((), np.int64)}
    restored = ckpts.restore(abstract)
    # 'arch': every process reads the whole batch (its networks see all images)
    data_it = (data_lib.train_iter(config.data, config.seed, 0, 1) if arch_mode else
               data_lib.train_iter(config.data, config.seed, jax.process_index(), jax.process_count()))
    if restored is None:
        params, opt_state = fresh()
        start, nan_skipped = 0, 0
    else:
        step0, state, data_state = restored
        params, opt_state = state["params"], state["opt_state"]
        start, nan_skipped = int(state["step"]), int(state["nan_skipped"])
        data_it.set_state(data_state)
        if jax.process_index() == 0:
            log.warning("resuming from %s/%d", ckpts.manager.directory, step0)

    def update(params, opt_state, grads, loss, step):
        finite = jnp.isfinite(loss) & jnp.all(jnp.asarray(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
        grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, 0.0), grads)
        lr = lr_fn(step)
        updates, new_opt = tx.update(grads, optim.set_lr(opt_state, lr), params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
        return keep(new_params, params), keep(new_opt, opt_state), finite, optax.global_norm(grads), lr
    def update_groups(params, opt_state, grads, stats, step):
        """'arch' mode: grads and [loss, ce, reg] stacked over process groups -> their means."""
        grads = jax.tree_util.tree_map(lambda g: jnp.mean(g, 0), grads)
        stats = jnp.mean(stats, 0)
        return update(params, opt_state, grads, stats[0], step) + (stats,)

    if arch_mode:
        update_fn = jax.jit(update_groups, donate_argnums=(0, 1), out_shardings=(p_sh, o_sh, rep, rep, rep, rep))
    else:
        update_fn = jax.jit(update, donate_argnums=(0, 1), out_shardings=(p_sh, o_sh, None, None, None))

    meta = MetaStep(module, label_smoothing=config.loss.label_smoothing, lam=config.loss.lam, mesh=local_mesh,
                    ghn_dtype=config.ghn_dtype)
    base_key = put_global(np.asarray(jax.random.PRNGKey(config.seed + 1)), sharding.replicated(local_mesh))
    b = config.data.batch_size
    size = config.data.image_size
    x_abs = jax.ShapeDtypeStruct((b, size, size, 3), jnp.float32, sharding=img_sh)
    y_abs = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=img_sh)
    p_abs = (_with_sharding(jax.eval_shape(init), jax.tree_util.tree_map(lambda _: sharding.replicated(local_mesh),
                                                                          p_sh))
             if arch_mode else abstract["params"])
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def load(step):
        nets = archs.meta_batch(config.deepnets, config.seed, step, num_classes)
        if arch_mode:
            nets = nets[first:first + m_local]
        prepared = meta.prepare([n.graph for n in nets])
        if config.get("compile_ahead", True):
            meta.precompile(p_abs, nets, prepared, x_abs, y_abs, _fold(base_key, step))
        return nets, prepared

    writer = Writer(workdir, total, start, tensorboard=config.get("tensorboard", True),
                    progress=config.get("progress", True))
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    per_device = sum(s.data.nbytes for a in jax.tree_util.tree_leaves((params, opt_state))
                     for s in a.addressable_shards if s.device == jax.local_devices()[0])
    writer.note(f"GHN {n_params:,} parameters; parameters + optimizer state: {per_device / 2**20:.1f} MiB on "
                f"device 0 of {jax.device_count()} (mesh {dict(mesh.shape)}); steps {start}..{total}, "
                f"{steps_per_epoch} per epoch")
    preempt = _Preemption()
    counter = CompileCounter(always=True)
    nan_steps = set(config.get("debug", {}).get("nan_steps", ()) or ())
    in_a_row, last, t_last, s_last, window = 0, {}, time.perf_counter(), start, []
    pending = pool.submit(load, start) if start < total else None
    step = start
    try:
        while step < total:
            batch = next(data_it)
            images = sharding.from_process_local(batch["image"], img_sh)
            labels = sharding.from_process_local(batch["label"].astype(np.int32), img_sh)
            local_params = sharding.local_view(params, local_mesh) if arch_mode else params
            if step in nan_steps:                    # fault injection for tests
                images = images * jnp.nan
            nets, prepared = pending.result()
            pending = pool.submit(load, step + 1) if step + 1 < total else None
            with counter:
                out = meta(local_params, nets, images, labels, dropout_key=_fold(base_key, step), prepared=prepared,
                           first_index=first if arch_mode else 0)
                if arch_mode:
                    stats = np.asarray([out["loss"], np.mean(out["ce"]), out["reg"]], np.float32)
                    grads, stats = sharding.stack_groups((out["grads"], stats), local_mesh, mesh)
                    params, opt_state, finite, gnorm, lr, stats = update_fn(params, opt_state, grads, stats,
                                                                            np.int64(step))
                    out = dict(out, loss=float(stats[0]), ce=[float(stats[1])], reg=float(stats[2]))
                else:
                    params, opt_state, finite, gnorm, lr = update_fn(params, opt_state, out["grads"],
                                                                     np.float32(out["loss"]), np.int64(step))
            step += 1
            if not bool(finite):
                nan_skipped += 1
                in_a_row += 1
                writer.note(f"step {step}: loss {out['loss']} is not finite; update skipped "
                            f"({nan_skipped} skipped so far)")
                if in_a_row >= config.get("max_nan_in_a_row", 20):
                    raise GhnError(f"{in_a_row} non-finite steps in a row (last at step {step}); the last "
                                   f"checkpoint is intact: lower optim.lr or check the data")
            else:
                in_a_row = 0
            window.append(out["loss"])
            metrics = {}
            if step % config.log_every == 0 or step == total:
                now = time.perf_counter()
                finite_losses = [v for v in window if np.isfinite(v)]
                metrics = {"loss": out["loss"], "loss_avg": float(np.mean(finite_losses)) if finite_losses else np.nan,
                           "ce": float(np.mean(out["ce"])), "reg": out["reg"],
                           "grad_norm": float(gnorm), "lr": float(lr), "nan_skipped": nan_skipped,
                           "steps_per_s": (step - s_last) / (now - t_last),
                           "compilations": counter.count, "compile_s": counter.seconds}
                t_last, s_last, last, window = now, step, metrics, []
            writer.step(step, metrics)
            stop = preempt.reached(step)
            if step % config.checkpoint.every_steps == 0 or step == total or stop:
                ckpts.save(step, {"params": params, "opt_state": opt_state, "step": np.int64(step),
                                  "nan_skipped": np.int64(nan_skipped)}, data_it.get_state(), wait=stop)
            if stop:
                writer.note(f"preempted: saved step {step}, exiting")
                break
        if step == total:
            export(workdir, _ghn_config(config.ghn), params)
    finally:
        preempt.restore()
        pool.shutdown(wait=True, cancel_futures=True)
        ckpts.close()
        writer.close()
    return {"step": step, "nan_skipped": nan_skipped, "preempted": step < total, **last, "params": params}


def host_params(params) -> Dict[str, np.ndarray]:
    """Every process gets the full parameters as numpy (gathered if sharded across hosts)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        params = multihost_utils.process_allgather(params, tiled=True)
    return jax.tree_util.tree_map(np.asarray, jax.device_get(params))


def export(workdir: str, cfg: GHNConfig, params) -> str:
    """Writes the trained GHN as `ghn.safetensors` (loadable by ghn_jax.from_pretrained and
    `python -m ghn_jax.predict --ckpt`) and logs a digest of the parameters on every process."""
    import hashlib
    from ghn_jax import tree_paths
    from ghn_jax.ghn.hub import save_safetensors
    host = host_params(params)
    h = hashlib.sha256()
    for k, v in sorted(tree_paths.flatten(host).items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    path = os.path.join(workdir, "ghn.safetensors")
    if jax.process_index() == 0:
        if "://" in path:                    # e.g. gs://: write locally, then copy
            import tempfile
            from etils import epath
            with tempfile.TemporaryDirectory() as d:
                save_safetensors(os.path.join(d, "ghn.safetensors"), cfg, host)
                epath.Path(path).write_bytes(epath.Path(d, "ghn.safetensors").read_bytes())
        else:
            save_safetensors(path, cfg, host)
    print(f"process {jax.process_index()}: params sha256 {h.hexdigest()}", flush=True)
    return path


def _fold(key, step):
    return jax.random.fold_in(key, step)


def _with_sharding(tree, shardings):
    return jax.tree_util.tree_map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings)
