"""Config push: versioned config sets per app and env, pushed through Salt's ``file.managed``.

``model`` checks a set, ``render`` renders its templates on the master,
``schema``/``store`` keep sets, pushes and the exact bytes pushed to every
host, ``lock`` keeps one push per app and env, ``states`` builds the Salt
high data, ``driver`` runs a push batch by batch, ``bundle`` imports and
exports a set as a directory.  See ``docs/confpush.md``.
"""
