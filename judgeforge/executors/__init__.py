"""Executors: what runs a builder over its inputs and writes the run dir.

:mod:`judgeforge.executors.local` holds what every executor shares (the plan and fingerprint, resume and growth, one
chunk's build, stopping, the finished manifest) and the loop over chunks in this process (``--shard i/N`` for a Slurm
array); :mod:`judgeforge.executors.ray` spreads the chunks over a pool of Ray actors;
:mod:`judgeforge.executors.build` is :func:`~judgeforge.executors.build.run_build`, the typed library
entry point ``judgeforge build``, ``judgeforge score`` and the loop's build stage go through;
:mod:`judgeforge.executors.dry_run` is ``--dry-run``: the plan and its cost, with nothing loaded or written.
"""
