"""The serializers: one configured YAML emitter (:mod:`.emit`) and one HCL writer
(:mod:`.hcl`); targets build data and hand it here, never strings of YAML or HCL."""
