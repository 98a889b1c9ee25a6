"""pipecompile: compile one pipeline.yaml into every CI/CD file a service needs."""

__version__ = "0.1.0"
