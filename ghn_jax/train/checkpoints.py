"""Training checkpoints: orbax CheckpointManager (async, keep N, atomic), resumable exactly.

One checkpoint holds the GHN parameters, the optimizer state, the step, the NaN-skip
counter (all in `state`) and the data iterator's state (JSON). Orbax writes each step to
a temporary directory and renames it when complete, so a killed run never leaves a
half-written checkpoint that looks finished. A checkpoint that is unreadable anyway
(disk corruption, a truncated copy) is reported and the previous one is used.
"""
import logging
import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from ghn_jax.errors import GhnError

log = logging.getLogger("ghn_jax.train")


class Checkpoints:
    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        directory = directory if "://" in directory else os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                                 create=True),
            item_names=("state", "data"))

    def save(self, step: int, state: Any, data_state: Any, wait: bool = False) -> None:
        """Saves after `step` steps. data_state: JSON-serialisable (the data iterator's)."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        data=ocp.args.JsonSave(data_state)), force=True)
        if wait:
            self.manager.wait_until_finished()

    def restore(self, abstract_state: Any) -> Optional[Tuple[int, Any, Any]]:
        """(step, state, data_state) of the newest readable checkpoint, or None if there is none.

        abstract_state: ShapeDtypeStructs with shardings, so arrays come back where they belong.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        failures, unreadable = [], []
        for step in steps:
            try:
                out = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
            except Exception as e:  # orbax raises many types for unreadable files
                msg = f"checkpoint {self.manager.directory}/{step} is unreadable ({type(e).__name__}: " \
                      f"{str(e).splitlines()[0][:200] if str(e) else ''})"
                failures.append(msg)
                older = [s for s in steps if s < step]
                if jax.process_index() == 0:
                    log.warning("%s; %s", msg, f"falling back to step {older[0]}" if older else "no older checkpoint")
                unreadable.append(step)
                continue
            self._set_aside(unreadable)
            return step, out["state"], out["data"]
        if failures:
            raise GhnError("no readable checkpoint in the workdir: " + "; ".join(failures) +
                           ". Remove the directory to start from scratch.")
        return None

    def _set_aside(self, steps) -> None:
        """Unreadable checkpoints are renamed `<step>.unreadable` (kept for inspection, and out
        of the way of the steps that will be saved again)."""
        if not steps:
            return
        from etils import epath
        if jax.process_index() == 0:
            for step in steps:
                src = epath.Path(self.manager.directory) / str(step)
                dst = epath.Path(self.manager.directory) / f"{step}.unreadable"
                if dst.exists():
                    dst.rmtree()
                src.rename(dst)
                log.warning("moved the unreadable checkpoint to %s", dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("ghn_jax: unreadable checkpoints set aside")
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
