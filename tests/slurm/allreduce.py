"""One gloo all-reduce across every process torchrun started (run by tests/test_cluster_slurm.py on the test
cluster): each rank contributes rank + 1; rank 0 writes what it saw to the JSON file named on the command line."""
import json
import os
import socket
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
seen = [None] * world
dist.all_gather_object(seen, {"rank": rank, "slurm_node": os.environ.get("SLURMD_NODENAME"),
                              "node_rank": os.environ.get("SLURM_NODEID"), "host": socket.gethostname(),
                              "image": os.environ.get("TINYRS_TEST_IMAGE"),
                              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})
if rank == 0:
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump({"world_size": world, "sum": total.item(), "ranks": seen}, handle, indent=1)
dist.destroy_process_group()
