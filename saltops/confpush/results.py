"""Reading what ``state.high`` returned from a host, into what a user needs to see.

Comments are cut short and diffs come only from ``file.managed`` (which
shows none for files holding secrets), so no file content or secret leaves
through a return beyond the diff of a file without secrets.
"""

_MAX = 2000


def summarize(ret, file_paths):
    """One host's return as ``{ok, files: {path: {...}}, failed: {id: comment}, changed: [ids], errors}``.

    ``file_paths`` maps the ``file.managed`` state ids to their paths.  A
    host that did not answer (``None``) or returned something other than
    state results (a render error, a refused concurrent run) is not ``ok``.
    """
    if ret is None:
        return {
            "ok": False,
            "files": {},
            "failed": {},
            "changed": [],
            "errors": ["no answer from the minion"],
        }
    if not isinstance(ret, dict) or not all(isinstance(v, dict) and "result" in v for v in ret.values()):
        errors = [str(e)[:_MAX] for e in ret] if isinstance(ret, (list, tuple)) else [str(ret)[:_MAX]]
        return {"ok": False, "files": {}, "failed": {}, "changed": [], "errors": errors}
    files, failed, changed = {}, {}, []
    for key, item in ret.items():
        sid = item.get("__id__") or key
        changes = item.get("changes") or {}
        if item.get("result") is False:
            failed[sid] = str(item.get("comment", ""))[:_MAX]
        if changes and item.get("result") is not None:
            changed.append(sid)
        if sid in file_paths:
            entry = {"result": item.get("result"), "comment": str(item.get("comment", ""))[:_MAX]}
            if changes or item.get("result") is None:
                entry["changed"] = True
                diff = changes.get("diff")
                if isinstance(diff, str):
                    entry["diff"] = diff[: 64 * 1024]
                if changes.get("newfile") or diff == "New file":
                    entry["new"] = True
            else:
                entry["changed"] = False
            files[file_paths[sid]] = entry
    return {"ok": not failed, "files": files, "failed": failed, "changed": sorted(changed), "errors": []}
