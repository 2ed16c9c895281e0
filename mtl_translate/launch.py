"""Making sure that N launched processes are one N-process training, never N independent copies.

Two launcher behaviours would otherwise fool a user on a machine without GPUs:
- `torchrun --nproc_per_node N` sets WORLD_SIZE=N, but Accelerate only forms a CPU process group when told to use
  the CPU: `accelerator_kwargs()` tells it, and `check_process_group` refuses any mismatch;
- `accelerate launch --num_processes N` (no --multi_gpu) starts ONE process on such a machine (its simple launcher),
  and that process cannot see N in its environment. `relaunch_if_single_of_many` finds N on the parent launcher's
  command line and replaces this process with `torch.distributed.run` starting N processes.
"""

import os
import shlex
import sys

import psutil
import torch
import yaml

from .checkpointing import TrainingError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def accelerator_kwargs() -> dict:
    """Several processes and no GPU: tell Accelerate to form a CPU (gloo) group; otherwise let it choose."""
    return {"cpu": True} if world_size() > 1 and not torch.accelerator.is_available() else {}


def check_process_group(accelerator) -> None:
    if accelerator.num_processes != world_size():
        raise TrainingError(f"the launcher started {world_size()} processes (WORLD_SIZE) but they formed a group of "
                           f"{accelerator.num_processes} ({accelerator.distributed_type}); they would train as "
                           "independent copies racing on one output_dir. Launch with torchrun --nproc_per_node N or "
                           "accelerate launch --multi_gpu --num_processes N.")


def requested_by_accelerate_launch() -> int | None:
    """`--num_processes` (or its config file's num_processes) of an `accelerate launch` that is this process's
    parent; None when the parent is something else."""
    try:
        argv = psutil.Process(os.getppid()).cmdline()
    except psutil.Error:
        return None
    for i, arg in enumerate(argv[:-1]):
        if arg == "accelerate.commands.launch" or (arg == "launch" and "accelerate" in os.path.basename(argv[i - 1])):
            break
    else:
        return None
    from accelerate.commands.launch import launch_command_parser

    args, _ = launch_command_parser().parse_known_args(argv[i + 1:])
    if args.num_processes is None and args.config_file:
        with open(args.config_file) as f:
            return (yaml.safe_load(f) or {}).get("num_processes")
    return args.num_processes


def relaunch_if_single_of_many() -> None:
    """Called first thing in training: when `accelerate launch --num_processes N` (N > 1) started this process
    alone, become `python -m torch.distributed.run --nproc_per_node N <this command>` (os.execv: same pid, so the
    launcher waits for the whole group and gets its exit code)."""
    if "WORLD_SIZE" in os.environ:
        return
    asked = requested_by_accelerate_launch()
    if not asked or asked <= 1:
        return
    if torch.accelerator.is_available() and os.environ.get("ACCELERATE_USE_CPU", "False").lower() != "true":
        raise TrainingError(f"accelerate launch was asked for {asked} processes but started 1; add --multi_gpu "
                           "(or use a config from recipes/accelerate_configs/).")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={asked}",
               "--no-python", sys.executable, *sys.orig_argv[1:]]
    print(f"accelerate launch started 1 of {asked} processes on a machine without GPUs; relaunching as: "
          f"{shlex.join(command[2:])}", file=sys.stderr, flush=True)
    os.execv(sys.executable, command)
