"""The release rehearsal's harness (issue 26): real tools wherever they run offline.

* the real AWS CLI against moto in server mode on 127.0.0.1 (:func:`moto_server`);
* real git with bare repositories as the application and GitOps remotes;
* a local HTTP server answering as Argo CD's API does (:mod:`.argocd`);
* scripts run as the user that runs them (uid 1001 on GitHub-hosted runners, root on
  CodeBuild), containers' mounts written as the image's own user (``setpriv``);
* stubs only for docker and cosign (:mod:`.stubs`), each enforcing the real tool's
  preconditions at the pinned version, with the source of each cited next to it.
"""
