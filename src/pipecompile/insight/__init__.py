"""What pipecompile tells people about a pipeline, all from the IR or the rendered files:
:mod:`.explain`, :mod:`.graph`, :mod:`.lint` (external checkers mapped home),
:mod:`.report` (how check and diff describe a change) and :mod:`.machine`
(``--format json`` and SARIF)."""
