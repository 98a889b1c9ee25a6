"""The whole flow's scenarios and their documented outcomes (README, "How a release
flows"), the same story on both orchestrators: each scenario is one push (or a re-run,
a merge) and ends in the audit rows it writes ({(service, environment): outcome}) and
the notification it sends.  They run in this order: ``main`` deploys what
``release/1.2`` verified, a hotfix's merge what the hotfix verified."""

from __future__ import annotations

from dataclasses import dataclass, field

WEB_CHANGE = {"app.py": "print('v{n}')\n"}


@dataclass(frozen=True)
class Scenario:
    name: str
    branch: str
    # what happens: push a change to these services ("merge:<branch>" merges it into
    # branch; "rerun" runs the previous scenario's runs again)
    action: str
    services: tuple[str, ...] = ()
    start: str = "main"
    rows: dict[tuple[str, str], str] = field(default_factory=dict)
    notified: tuple[str, ...] = ()  # a fragment of each notification, per service
    # the situation: cancel the run during this deploy's health wait; delete the
    # signature before this environment's deploy; abort this rollout; close this window
    cancel: str = ""
    unsign: str = ""
    abort: str = ""
    closed: str = ""


def story(
    first: str, dev: str, release_envs: tuple[str, str], develop: str | None
) -> list[Scenario]:
    """The scenarios for a sample whose first service is ``first`` (at the repository
    root) and second ``second``; ``dev`` the feature environment, ``release_envs`` the
    environment before production and production, ``develop`` the environment of
    ``develop`` (None: no environment deploys it)."""
    staging, production = release_envs
    return [
        Scenario(
            "feature",
            "feature/x",
            "push",
            (first,),
            rows={(first, dev): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "develop",
            "develop",
            "push",
            (first,),
            rows={(first, develop): "succeeded"} if develop else {},
            notified=("succeeded",) if develop else (),
        ),
        Scenario(
            "release",
            "release/1.2",
            "push",
            (first,),
            rows={(first, staging): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "main",
            "main",
            "merge:release/1.2",
            rows={(first, production): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "rerun",
            "main",
            "rerun",
            rows={(first, production): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "hotfix",
            "hotfix/1.2.1",
            "push",
            (first,),
            rows={(first, staging): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "hotfix-merge",
            "main",
            "merge:hotfix/1.2.1",
            rows={(first, production): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "cancel",
            "release/1.3",
            "push",
            (first,),
            cancel=staging,
            rows={(first, staging): "cancelled"},
            notified=("CANCELLED",),
        ),
        Scenario(
            "two-services",
            "release/2.0",
            "push",
            ("both",),
            rows={("*", staging): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "unsigned",
            "feature/unsigned",
            "push",
            (first,),
            unsign=dev,
            rows={(first, dev): "failed"},
            notified=("FAILED",),
        ),
        Scenario(
            "window-release",
            "release/1.4",
            "push",
            (first,),
            rows={(first, staging): "succeeded"},
            notified=("succeeded",),
        ),
        Scenario(
            "window",
            "main",
            "merge:release/1.4",
            closed=production,
            rows={(first, production): "outside-sync-window"},
            notified=("FAILED",),
        ),
        # re-run inside the window (README): this time Argo Rollouts aborts the canary
        Scenario(
            "abort",
            "main",
            "rerun",
            abort=production,
            rows={(first, production): "rolled-back"},
            notified=("FAILED",),
        ),
    ]
