"""
Benchmark-only runner: the plain reactor -> runner baseline of tests/bench/bench_alarms.py.

Each call appends one line (sequence number, fire time, arrival time) to the
file named by ``bench_sink_file`` in the master config: the least work a
runner can do per event.

CLI Example:

.. code-block:: bash

    salt-run bench_sink.record seq=1 t0=1700000000.0
"""

import time


def record(seq, t0):
    """Append one arrival."""
    with open(__opts__["bench_sink_file"], "a", encoding="utf-8") as fh:  # noqa: F821
        fh.write(f"{int(seq)} {float(t0)} {time.time()}\n")
    return True
