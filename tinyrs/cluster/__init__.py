"""The cluster side of the pipeline: SLURM requests per job (``resources``), the multi-node GPU launch
(``launch``), Apptainer images rendered from the pinned environments (``images``), and what the Snakefile
asks of them (``workflow``). See docs/cluster.md.
"""
