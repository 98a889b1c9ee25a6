"""The command line: :mod:`.cli` (build, check, diff, validate and the command table),
:mod:`.cli_explain` (graph, explain), :mod:`.cli_tools` (init, pins, lint, completion,
schema, rules) and :mod:`.cli_shared` (exit codes, common options, output). The console
entry point is :mod:`pipecompile._entry`, which answers a clean ``check`` before loading
click."""
