"""Executors: what runs a builder over its inputs and writes the run dir.

:mod:`judgeforge.executors.local` is today's loop over chunks on one machine (``--shard i/N`` for a Slurm
array); :mod:`judgeforge.executors.build` is :func:`~judgeforge.executors.build.run_build`, the typed
library entry point ``judgeforge build``, ``judgeforge score`` and the loop's build stage go through.
"""
