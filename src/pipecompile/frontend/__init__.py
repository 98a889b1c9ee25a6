"""The front end: read the pipeline file, load it with positions, validate it (schema,
models, cross-references) and lower it into the IR (:mod:`pipecompile.ir`).

* :mod:`.read` -- the stages in order: read -> load -> validate -> lower -> targets' checks
* :mod:`.loader` -- YAML into plain data plus the position of every value
* :mod:`.model`, :mod:`.model_types` -- the language as pydantic models (the schema's source)
* :mod:`.validate`, :mod:`.references` -- located errors from the schema and the references
* :mod:`.lower`, :mod:`.lower_rules`, :mod:`.defaults` -- the rules that build the IR
* :mod:`.pins` -- pinned versions (pipecompile.lock); :mod:`.discovery` -- finding the file
"""
