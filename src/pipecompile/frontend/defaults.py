"""The defaults table: every default the language leaves to pipecompile that is more
than a field's own default in the models (those live in model.py, once).

Lowering applies these once; targets never see a default, only the IR.
"""

from __future__ import annotations

from ..ir import CanaryStep, SecretStore

# The External Secrets store the charts name, and explain asks the cluster to have.
SECRET_STORE = SecretStore("ClusterSecretStore", "aws-secrets-manager")

# environments.X.cluster's default: the cluster Argo CD runs in (the local target's
# kubeconfig then names one EKS cluster, <project>, for all of them)
IN_CLUSTER = "https://kubernetes.default.svc"

DEFAULT_STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "node": (
        ("Install dependencies", "npm ci"),
        ("Lint code", "npm run lint"),
        ("Run unit tests", "npm run test"),
    ),
    "python": (
        ("Install dependencies", "python -m pip install -r requirements.txt"),
        ("Lint code", "python -m ruff check ."),
        ("Run unit tests", "python -m pytest"),
    ),
    "java": (
        ("Install dependencies", "./mvnw -B dependency:go-offline"),
        ("Lint code", "./mvnw -B checkstyle:check"),
        ("Run unit tests", "./mvnw -B test"),
    ),
    "go": (
        ("Install dependencies", "go mod download"),
        ("Lint code", "go vet ./..."),
        ("Run unit tests", "go test ./..."),
    ),
}

BUILTIN_CANARY = (CanaryStep(10, "5m"), CanaryStep(50, "5m"), CanaryStep(100, None))


# Minutes a deployer waits for Argo CD to report the new image Synced and Healthy,
# on top of the strategy's own pauses (sync, image pull, readiness, analysis).
ROLLOUT_MARGIN_MINUTES = 15
