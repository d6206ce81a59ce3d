bench-sink-record:
  runner.bench_sink.record:
    - args:
      - seq: {{ data.get('seq', -1) | int }}
      - t0: {{ data.get('t0', 0) | float }}
