"""The output side: which paths pipecompile owns, its state files, and syncing the tree.

* :mod:`.paths` -- the ownership rule and the only file operations on owned paths
  (walked component by component from the root, never through a symbolic link);
* :mod:`.state` -- the manifest and the journal, read as untrusted input;
* :mod:`.header` -- the do-not-edit header and the inputs' fingerprints;
* :mod:`.sync` -- plan (compare rendered files with the disk) and apply (write,
  delete, record), all in this one process.

Only the standard library is imported here: ``check``'s fast path must not pay
for pydantic or ruamel.yaml.
"""
