"""Command lines: ``python -m videoseg {run,replay,synth,eval,benchmark,...}``, one module per command."""
