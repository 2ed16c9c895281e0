"""SIGTERM, what torchrun, SLURM, Kubernetes and spot machines send a job before they stop it, becomes a checkpoint
at the next optimizer step boundary and an exit; `resume_from_checkpoint: latest` then goes on bit for bit."""

import signal
import threading

import torch

# What a shell reports for a process that SIGTERM ended: launchers and schedulers see an interrupted job (to requeue
# or restart), not a finished one.
EXIT_CODE = 128 + signal.SIGTERM


class SigtermFlag:
    """While training (a `with` block), SIGTERM only sets a flag that the loop reads between steps: a handler that
    saved by itself could interrupt a collective or a half-written file. The previous handler is restored after.
    Outside the main thread (where Python cannot set handlers) it does nothing."""

    def __init__(self):
        self.received = self.installed = False
        self.previous = None

    def __enter__(self) -> "SigtermFlag":
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGTERM, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        self.received = True

    def __exit__(self, *exc) -> None:
        if self.installed:  # None: a handler set outside Python, restored as the default
            signal.signal(signal.SIGTERM, self.previous or signal.SIG_DFL)
            self.installed = False

    def agreed(self, accelerator) -> bool:
        """True on every process once any of them got SIGTERM (launchers signal them at slightly different
        moments): they must stop at the same step, since saving a checkpoint is collective."""
        if accelerator.num_processes == 1:
            return self.received
        flag = torch.tensor([self.received], dtype=torch.int32, device=accelerator.device)
        return bool(accelerator.reduce(flag, "sum").item())
