"""Metrics to JSON lines and TensorBoard, and a progress line with steps/s and ETA
(process 0 only; other processes write nothing)."""
import json
import os
import sys
import time
from typing import Dict, Optional

import jax


class Writer:
    def __init__(self, workdir: str, total_steps: int, start_step: int = 0, tensorboard: bool = True,
                 progress: bool = True):
        self.main = jax.process_index() == 0
        self.total, self.t0, self.s0 = total_steps, time.perf_counter(), start_step
        self._jsonl = self._tb = self._bar = None
        if not self.main:
            return
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:       # optional: JSON lines always work
                self._tb = None
        if progress:
            from tqdm import tqdm
            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                             file=sys.stderr, mininterval=1.0)

    def step(self, step: int, metrics: Dict[str, float]) -> None:
        """Called once per finished step (1-based count); writes `metrics` if given."""
        if not self.main:
            return
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if metrics:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k in ("loss_avg", "lr")},
                                      refresh=False)
        if metrics:
            rec = {"step": step, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
            self._jsonl.write(json.dumps(rec) + "\n")
            self._jsonl.flush()
            if self._tb is not None:
                for k, v in metrics.items():
                    self._tb.add_scalar(k, float(v), step)

    def eta_s(self, step: int) -> Optional[float]:
        done = step - self.s0
        return None if done <= 0 else (time.perf_counter() - self.t0) / done * (self.total - step)

    def note(self, msg: str) -> None:
        if self.main:
            (self._bar.write if self._bar is not None else print)(msg, file=sys.stderr)

    def close(self) -> None:
        if not self.main:
            return
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        self._jsonl.close()
